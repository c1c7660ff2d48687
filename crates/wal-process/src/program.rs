//! What a program is to its `main`: something that runs until a shutdown
//! future resolves, and by default until SIGTERM or SIGINT.

use std::future::Future;

use crate::shutdown_signal;

/// A built program, ready to run (the gateway's `Application`, the worker's
/// `Worker`).
pub trait Program: Sized + Send {
    /// What running can fail with.
    type Error;

    /// Runs until `shutdown` resolves, then drains within the program's
    /// grace period.
    fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Runs until SIGTERM or SIGINT.
    fn run_until_stopped(self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.run_until(shutdown_signal())
    }
}
