//! push (todo)
