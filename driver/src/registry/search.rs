//! search (todo)
