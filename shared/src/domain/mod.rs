//! The domain: jobs, their status machine, the retry policy, the
//! health verdict and the clock.

pub mod clock;
pub mod health;
pub mod job;
pub mod retry;
pub mod status;

pub use clock::{Clock, ManualClock, SystemClock};
pub use job::{Job, JobEvent, JobType, JobTypeError, NewJob, Priority};
pub use retry::{FailureKind, NextStep, RetryPolicy};
pub use status::JobStatus;
