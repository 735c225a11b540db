//! cairn-driver: the layer and image store (issue 4). Only the crate boundary exists so far;
//! the store itself is not implemented yet.
