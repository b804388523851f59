pub mod demo;
pub mod ops;
