pub mod demo;
pub mod keys;
pub mod ops;
pub mod outbox;
pub mod serve;
