//! The hello exchange: what this side announces, and the pure negotiation
//! of the sizes and digest both sides then use
//! (`docs/PROTOCOL.md#hello`).

use crate::config::Config;
use crate::digest::{self, Algorithm, Digests};
use crate::error::Error;
use crate::frame::{Hello, AGREED, FLAG_V3, HEADER_LEN, VERSION, WINDOW_SHIFT};
use crate::setup::{BufferKind, InsufficientSize, SetupError};

/// Sizes both sides agreed on in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's hello flags.
    pub peer_flags: u16,
    /// Largest frame payload this side may send.
    pub max_frame: u32,
    /// Body chunk size both sides use.
    pub chunk: u32,
    /// The digest every transfer on this connection uses.
    pub digest: Algorithm,
    /// What the peer offered, in its order (MD5 implied).
    pub peer_digests: Digests,
    /// The protocol version both speak: 3 when both hellos carry
    /// [`FLAG_V3`], else 2.
    pub version: u16,
    /// How many requests may be in flight at once: the smaller of both
    /// sides' windows, 1 with a version-2 peer.
    pub window: u16,
}

impl Negotiated {
    /// Whether the server takes pre-agreed gets: a version-3 session
    /// whose server listed [`AGREED`] (`docs/PROTOCOL.md#pre-agreed-gets`).
    pub fn agreed(&self) -> bool {
        self.version >= 3 && self.peer_digests.to_bytes().contains(&AGREED)
    }
}

/// Which end of the connection this is: the client's digest preference
/// wins, and only a client may pin one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

/// This side's half of the handshake: the hello it sends, plus what it
/// knows and does not announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalHello {
    pub side: Side,
    pub hello: Hello,
    /// Largest frame payload the output buffer holds.
    pub max_send: u32,
}

impl LocalHello {
    /// The hello for these buffer sizes and settings. Fails when a buffer
    /// cannot hold one frame of `MIN_FRAME` bytes (saying the size it
    /// needs, the input buffer first), when `chunk_size` is 0, and when
    /// `config` offers a digest this build cannot compute (the two sides
    /// would then choose differently).
    pub fn new(
        side: Side,
        config: &Config,
        mut flags: u16,
        window: usize,
        in_len: usize,
        out_len: usize,
    ) -> Result<Self, SetupError> {
        for (buffer, len, required) in [
            (BufferKind::Input, in_len, super::MIN_INPUT_BUFFER),
            (BufferKind::Output, out_len, super::MIN_OUTPUT_BUFFER),
        ] {
            if len < required {
                return Err(InsufficientSize { buffer, required }.into());
            }
        }
        if config.chunk_size == 0 {
            return Err(SetupError::ZeroChunkSize);
        }
        if let Some(a) = config.digests.iter().find(|a| !a.is_available()) {
            return Err(SetupError::DigestUnavailable(a));
        }
        if window == 0 || window > crate::frame::MAX_WINDOW {
            return Err(SetupError::Window);
        }
        flags |= FLAG_V3 | (((window - 1) as u16) << WINDOW_SHIFT);
        let max_frame = u32::try_from(in_len - HEADER_LEN).unwrap_or(u32::MAX);
        let max_send = u32::try_from(out_len - HEADER_LEN).unwrap_or(u32::MAX);
        // A server that pipelines says it takes pre-agreed gets in a free
        // digest slot (`docs/PROTOCOL.md#pre-agreed-gets`).
        let mut digests = config.digests.to_bytes();
        if side == Side::Server && window > 1 {
            if let Some(free) = digests.iter_mut().find(|d| **d == 0) {
                *free = AGREED;
            }
        }
        Ok(LocalHello {
            side,
            hello: Hello {
                version: VERSION,
                flags,
                max_frame,
                chunk: config.chunk_size.min(max_frame).min(max_send),
                digests: Digests::from_bytes(digests),
            },
            max_send,
        })
    }
}

/// What both sides use after `local` and `peer` exchanged hellos: frames
/// no larger than either side takes (or this side's output buffer holds),
/// the smaller chunk, and the first digest in the client's order the
/// server accepts. A client that pinned its digests (left MD5 out) refuses
/// the MD5 fallback with [`Error::DigestRefused`].
pub(crate) fn negotiate(local: &LocalHello, peer: &Hello) -> Result<Negotiated, Error> {
    if peer.version != local.hello.version {
        return Err(Error::VersionMismatch);
    }
    let max_frame = peer
        .max_frame
        .min(local.hello.max_frame)
        .min(local.max_send);
    let chunk = peer.chunk.min(local.hello.chunk).min(max_frame);
    let mine = local.hello.digests;
    let digest = match local.side {
        Side::Client => {
            let d = digest::choose(mine, peer.digests);
            if mine.pins() && !mine.lists(d) {
                return Err(Error::DigestRefused);
            }
            d
        }
        Side::Server => digest::choose(peer.digests, mine),
    };
    let (version, window) = if peer.flags & FLAG_V3 != 0 {
        let theirs = (peer.flags >> WINDOW_SHIFT) + 1;
        let mine = (local.hello.flags >> WINDOW_SHIFT) + 1;
        (3, theirs.min(mine))
    } else {
        (2, 1)
    };
    Ok(Negotiated {
        version,
        window,
        peer_flags: peer.flags,
        max_frame,
        chunk,
        digest,
        peer_digests: peer.digests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{MIN_INPUT_BUFFER, MIN_OUTPUT_BUFFER};

    fn local(side: Side, digests: Digests) -> LocalHello {
        let config = Config {
            chunk_size: 1000,
            digests,
            ..Config::default()
        };
        LocalHello::new(side, &config, 0, 1, 4096 + HEADER_LEN, 2048 + HEADER_LEN).unwrap()
    }

    fn peer(max_frame: u32, chunk: u32, digests: Digests) -> Hello {
        Hello {
            version: VERSION,
            flags: 7,
            max_frame,
            chunk,
            digests,
        }
    }

    #[test]
    fn sizes_are_the_smaller_of_both_sides_and_of_the_output_buffer() {
        let me = local(Side::Server, Digests::MD5_ONLY);
        assert_eq!(me.hello.max_frame, 4096);
        let n = negotiate(&me, &peer(1 << 20, 1 << 20, Digests::MD5_ONLY)).unwrap();
        // This side may not send more than its output buffer holds.
        assert_eq!((n.max_frame, n.chunk, n.peer_flags), (2048, 1000, 7));
        let n = negotiate(&me, &peer(600, 800, Digests::MD5_ONLY)).unwrap();
        assert_eq!((n.max_frame, n.chunk), (600, 600));
        assert_eq!(n.digest, Algorithm::Md5);
    }

    #[test]
    fn a_peer_of_another_version_is_refused() {
        let mut p = peer(1024, 512, Digests::MD5_ONLY);
        p.version = VERSION + 1;
        let me = local(Side::Client, Digests::MD5_ONLY);
        assert_eq!(negotiate(&me, &p), Err(Error::VersionMismatch));
    }

    #[test]
    fn buffers_too_small_for_one_frame_are_refused() {
        let c = Config::default();
        let ok = LocalHello::new(Side::Client, &c, 0, 1, MIN_INPUT_BUFFER, MIN_OUTPUT_BUFFER);
        assert!(ok.is_ok());
        let short = |buffer, required| Err(InsufficientSize { buffer, required }.into());
        for (i, o, e) in [
            (
                MIN_INPUT_BUFFER - 1,
                MIN_OUTPUT_BUFFER,
                short(BufferKind::Input, MIN_INPUT_BUFFER),
            ),
            (
                MIN_INPUT_BUFFER,
                MIN_OUTPUT_BUFFER - 1,
                short(BufferKind::Output, MIN_OUTPUT_BUFFER),
            ),
            // Both short: the input buffer is named first.
            (0, 0, short(BufferKind::Input, MIN_INPUT_BUFFER)),
        ] {
            assert_eq!(LocalHello::new(Side::Client, &c, 0, 1, i, o), e);
        }
    }

    #[test]
    fn an_unusable_config_says_what_is_wrong() {
        let (i, o) = (MIN_INPUT_BUFFER, MIN_OUTPUT_BUFFER);
        let zero = Config {
            chunk_size: 0,
            ..Config::default()
        };
        let r = LocalHello::new(Side::Client, &zero, 0, 1, i, o);
        assert_eq!(r, Err(SetupError::ZeroChunkSize));
        for a in Algorithm::KNOWN.into_iter().filter(|a| !a.is_available()) {
            let c = Config {
                digests: Digests::from_bytes([a.id(), 0, 0, 0]),
                ..Config::default()
            };
            let r = LocalHello::new(Side::Server, &c, 0, 1, i, o);
            assert_eq!(r, Err(SetupError::DigestUnavailable(a)));
        }
    }

    #[cfg(feature = "sha256")]
    #[test]
    fn the_clients_preference_wins_and_a_pin_refuses_md5() {
        let sha = Digests::from_bytes([Algorithm::Sha256.id(), 0, 0, 0]);
        let both = Digests::from_bytes([Algorithm::Sha256.id(), Algorithm::Md5.id(), 0, 0]);
        // Client side: its own order first.
        let n = negotiate(&local(Side::Client, both), &peer(1024, 512, sha)).unwrap();
        assert_eq!(n.digest, Algorithm::Sha256);
        // Server side: the peer (client) order decides.
        let n = negotiate(&local(Side::Server, both), &peer(1024, 512, sha)).unwrap();
        assert_eq!(n.digest, Algorithm::Sha256);
        // A server offering only MD5: a pinned client refuses, an open one
        // falls back.
        let md5 = Digests::MD5_ONLY;
        let pinned = local(Side::Client, sha);
        assert_eq!(
            negotiate(&pinned, &peer(1024, 512, md5)),
            Err(Error::DigestRefused)
        );
        let open = local(Side::Client, both);
        assert_eq!(
            negotiate(&open, &peer(1024, 512, md5)).unwrap().digest,
            Algorithm::Md5
        );
    }
}
