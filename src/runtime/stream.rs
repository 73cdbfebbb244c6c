//! A TCP stream wrapper that flushes only when something was written.
//!
//! madsim's simulated `TcpStream::poll_flush` sends a packet even when its buffer is empty, and
//! hyper flushes on every poll of a connection. Two idle keep-alive peers then wake each other with
//! empty packets forever, which made simulations ~10x slower than they need to be. Skipping empty
//! flushes removes that; on real tokio a flush of a `TcpStream` does nothing, so production is
//! unaffected.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct FlushOnWrite<S> {
    inner: S,
    unflushed: bool,
}

impl<S> FlushOnWrite<S> {
    pub fn new(inner: S) -> Self {
        FlushOnWrite { inner, unflushed: false }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FlushOnWrite<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FlushOnWrite<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.unflushed = true;
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.unflushed {
            return Poll::Ready(Ok(()));
        }
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(result, Poll::Ready(Ok(()))) {
            self.unflushed = false;
        }
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
