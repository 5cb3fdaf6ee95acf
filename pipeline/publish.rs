//! publish (being written).
