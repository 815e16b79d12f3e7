//! The channel between the running process and the one replacing it: a
//! Unix stream socket carrying length-prefixed JSON messages, the first of
//! which brings the listening sockets along (SCM_RIGHTS).

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// Sockets one handover can carry (listeners of a config, plus admin).
pub const MAX_FDS: usize = 64;
/// The largest message accepted (server states of a large config).
const MAX_MESSAGE: usize = 16 << 20;

/// Sends `msg`, with `fds` attached to its first byte.
pub fn send<T: Serialize>(stream: &UnixStream, msg: &T, fds: &[OwnedFd]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::other(format!(
            "{} sockets to hand over; at most {MAX_FDS}",
            fds.len()
        )));
    }
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    let mut framed = Vec::with_capacity(4 + body.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&body);
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !borrowed.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
        return Err(io::Error::other("the sockets do not fit one message"));
    }
    let sent = sendmsg(
        stream,
        &[IoSlice::new(&framed)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    // The descriptors went with the first byte; the rest is a plain write.
    (&*stream).write_all(&framed[sent..])
}

/// Receives one message and the sockets that came with it.
pub fn recv<T: DeserializeOwned>(stream: &UnixStream) -> io::Result<(T, Vec<OwnedFd>)> {
    let mut head = [0u8; 4];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut head)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    if got.bytes == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the other process closed the channel",
        ));
    }
    (&*stream).read_exact(&mut head[got.bytes..])?;
    let len = u32::from_be_bytes(head) as usize;
    if len > MAX_MESSAGE {
        return Err(io::Error::other(format!("a message of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    (&*stream).read_exact(&mut body)?;
    let msg = serde_json::from_slice(&body).map_err(io::Error::other)?;
    Ok((msg, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_message_carries_listening_sockets() {
        let (a, b) = UnixStream::pair().expect("pair");
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let fd: OwnedFd = l.into();
        send(&a, &vec!["public".to_string()], &[fd]).expect("send");
        let (names, fds): (Vec<String>, _) = recv(&b).expect("recv");
        assert_eq!(names, ["public"]);
        assert_eq!(fds.len(), 1);
        let got = TcpListener::from(fds.into_iter().next().expect("fd"));
        assert_eq!(got.local_addr().expect("addr"), addr, "the same socket");
        // A plain message afterwards, with no socket.
        send(&a, &"ready", &[]).expect("send");
        let (word, fds): (String, _) = recv(&b).expect("recv");
        assert_eq!((word.as_str(), fds.len()), ("ready", 0));
        drop(a);
        assert!(recv::<String>(&b).is_err(), "closed");
    }
}
