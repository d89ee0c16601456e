//! sigtrail library.
