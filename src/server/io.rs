//! The connection's socket, shared between hyper and the task that runs the connection, so that a
//! client too slow to send its headers (slow loris) gets `408 Request Timeout` before the socket
//! closes: hyper's header timeout only drops the connection.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A socket hyper reads and writes through a shared reference.
#[derive(Clone)]
pub struct SharedSocket {
    stream: Arc<TcpStream>,
    /// Request bytes arrived since the last response bytes left: a request is under way.
    pending: Arc<AtomicBool>,
}

impl SharedSocket {
    pub fn new(stream: TcpStream) -> SharedSocket {
        SharedSocket {
            stream: Arc::new(stream),
            pending: Arc::new(AtomicBool::new(false)),
        }
    }

    /// After hyper gave up on the connection for its header timeout: answer 408 if a request
    /// had begun (an idle keep-alive connection is just closed).
    pub async fn request_timeout(&self) {
        if !self.pending.load(Ordering::Relaxed) {
            return;
        }
        let body = r#"{"error":{"message":"the request headers did not arrive in time","type":"invalid_request_error","param":null,"code":null}}"#;
        let response = format!(
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut rest = response.as_bytes();
        while !rest.is_empty() {
            if self.stream.writable().await.is_err() {
                return;
            }
            match self.stream.try_write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }
}

impl AsyncRead for SharedSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    if n > 0 {
                        self.pending.store(true, Ordering::Relaxed);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(data) {
                Ok(n) => {
                    self.pending.store(false, Ordering::Relaxed);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The socket closes when the last handle is dropped, after a possible 408.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
