//! A minimal HTTP/1.1 server for the endpoint: GET only, one request per connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Registry;

/// Runs the server on a thread of its own (with its own single-threaded runtime).
pub(super) fn spawn(
    listener: std::net::TcpListener,
    registry: Arc<Registry>,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("metadata runtime: {e}"))?;
    std::thread::Builder::new()
        .name("berth-metadata".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(%e, "metadata listener");
                        return;
                    }
                };
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => {
                            let r = registry.clone();
                            tokio::spawn(async move {
                                let _ =
                                    tokio::time::timeout(Duration::from_secs(10), serve(stream, r))
                                        .await;
                            });
                        }
                        Err(e) => {
                            tracing::warn!(%e, "metadata accept");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
        })
        .map_err(|e| format!("metadata thread: {e}"))?;
    Ok(())
}

async fn serve(mut stream: TcpStream, registry: Arc<Registry>) -> std::io::Result<()> {
    let peer = stream.peer_addr()?.ip();
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 16 * 1024 {
            return respond(&mut stream, 431, "{}", false).await;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut stream,
            405,
            "{\"error\":\"method not allowed\"}",
            false,
        )
        .await;
    }
    let reg = registry.clone();
    let p = path.to_string();
    let (status, body) = tokio::task::spawn_blocking(move || reg.answer(&p, peer))
        .await
        .unwrap_or((500, serde_json::Value::Null));
    let body = serde_json::to_string(&body).unwrap_or_else(|_| "null".into());
    respond(&mut stream, status, &body, method == "HEAD").await
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    body: &str,
    head: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head {
        out.push_str(body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}
