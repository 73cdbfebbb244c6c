//! hyper's timer, built on `tokio::time` so that it is madsim's under simulation. hyper-util's
//! `TokioTimer` calls real tokio's runtime and panics there, which is why this exists. (No executor
//! is needed: HTTP/1 connections are driven by tasks the seam spawns itself.)

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, Default)]
pub struct SeamTimer;

struct SeamSleep(Pin<Box<tokio::time::Sleep>>);

impl Future for SeamSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for SeamSleep {}

impl hyper::rt::Timer for SeamTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(SeamSleep(Box::pin(tokio::time::sleep(duration))))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        // std Instant is virtual under madsim, so this difference is simulated time.
        #[allow(clippy::disallowed_methods, reason = "the seam: hyper hands us a std deadline (virtual under madsim)")]
        let now = Instant::now();
        self.sleep(deadline.saturating_duration_since(now))
    }
}
