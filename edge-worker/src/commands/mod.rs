pub mod demo;
pub mod keys;
pub mod ops;
pub mod serve;
