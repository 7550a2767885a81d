//! Layer 8: runs built on the whole engine. For now the smoke run of `taming smoke`.

pub mod smoke;
