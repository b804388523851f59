//! Turning `pending` into `completed`: handlers, the processing core every
//! consumer shares, and the edge worker's loop.

mod handler;
mod processor;
mod registry;
pub mod runner;

pub use handler::{HandlerError, HandlerOutput, JobContext, JobHandler, Progress};
pub use processor::{
    DEADLINE_MARGIN, Disposition, Executed, Finished, OtherTypes, Processor, RELEASE_BEFORE_DEADLINE, Taken,
};
pub use registry::Registry;
pub use runner::{Summary, WorkerOptions};
