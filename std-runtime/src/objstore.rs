//! `ferry serve --store s3://BUCKET[/PREFIX]`: the served tree in an
//! S3-compatible object store (through `object_store`'s `aws` backend), so
//! several stateless servers can share one store (README, "Several
//! servers, one store"; issue 17).
//!
//! Layout under the prefix: a file `a/b.txt` is the object `a/b.txt`; a
//! directory is a key prefix (listed with the `/` delimiter), made by
//! `mkdir` as a marker object `DIR/.ferry-dir`. Names starting `.ferry-`
//! are reserved. Uploads in progress live under `.ferry-uploads/`:
//!
//! ```text
//! .ferry-uploads/<hex of the target path>/<attempt>/state     size and the chunks taken over
//! .ferry-uploads/<hex of the target path>/<attempt>/c<offset> body bytes from offset (≤ CHUNK)
//! .ferry-uploads/<hex of the target path>/<attempt>/whole     the assembled body (commit)
//! ```
//!
//! Why chunk objects rather than one multipart upload: a resumed put must
//! hash the bytes already held (`Store::read_part_at`), and the parts of an
//! unfinished S3 multipart upload cannot be read back. Chunk objects can,
//! from any node: a resume through another server lists them, takes the
//! contiguous run from offset 0 and continues after it. No server keeps
//! upload state in memory or on disk beyond the chunk it is filling.
//!
//! Commit, once the digest matched: a body held in one chunk is written
//! with a single PUT (create-only for `fail` and `keep-both`); a longer one
//! is assembled by a multipart upload from its chunks — straight onto the
//! target for `replace` (S3 makes a multipart object visible whole, at
//! completion), else into `whole` and copied create-only onto the target.
//! Nothing is visible under the target name before that last step.
//! The cost: a large put moves its body about three times inside the store
//! (chunks, assembly, copy); docs/BENCHMARKS.md has the numbers.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ferry_core::digest::{Algorithm, Hasher, Sum};
use ferry_core::message::{Kind, Name};
use ferry_core::{Entry, Error, Overwrite};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::aws::{
    AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut, S3CopyIfNotExists,
};
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, ClientConfigKey, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use tracing::{info, warn};

/// Body bytes per chunk object: the resume granularity of a put killed
/// with its server (a client that disconnects has its tail kept too), and
/// above S3's 5 MiB minimum multipart part.
pub const CHUNK: usize = 8 << 20;
/// Chunk PUTs one upload may have in flight while more body arrives.
const IN_FLIGHT: usize = 2;
/// The reserved prefix of every name Ferry keeps for itself.
pub const RESERVED: &str = ".ferry-";
/// Where uploads in progress live.
const UPLOADS: &str = ".ferry-uploads";
/// The marker object `mkdir` writes.
const DIR_MARKER: &str = ".ferry-dir";
/// The object metadata key holding a verified digest, `ALG:HEX`.
const DIGEST_META: &str = "ferry-digest";
/// The first line of an upload's state object.
const STATE_MAGIC: &str = "ferry-upload 1";

/// Why a server cannot serve `--store URL`; each names the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not an `s3://BUCKET[/PREFIX]` URL.
    #[error("--store {0}: not an s3://BUCKET[/PREFIX] URL")]
    BadUrl(String),
    /// No credentials in the environment.
    #[error("--store {0}: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_SKIP_SIGNATURE=true for a store without authentication)")]
    NoCredentials(String),
    /// The client could not be configured.
    #[error("--store {url}: {source}")]
    Config {
        /// The store.
        url: String,
        /// The cause.
        source: object_store::Error,
    },
    /// The bucket does not exist (or these credentials cannot see it).
    #[error(
        "--store {url}: bucket {bucket:?} not found (or not accessible with these credentials)"
    )]
    NoBucket {
        /// The store.
        url: String,
        /// The bucket.
        bucket: String,
    },
    /// The start-up check failed: unreachable, refused, or slow.
    #[error("--store {url}: cannot use the store: {why}")]
    Unreachable {
        /// The store.
        url: String,
        /// What failed.
        why: String,
    },
    /// The store ignores create-only writes: `--overwrite fail` and
    /// `keep-both` would silently replace files.
    #[error("--store {url}: the store does not honour create-only writes ({what}): a put with --overwrite fail could silently replace a file; refusing to start (use --read-only to serve it read-only)")]
    NoCreateOnly {
        /// The store.
        url: String,
        /// Which write was not refused the second time.
        what: &'static str,
    },
}

impl StoreError {
    /// Whether the command line (or environment) is at fault: exit 2;
    /// else the store is (exit 7).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StoreError::BadUrl(_) | StoreError::NoCredentials(_) | StoreError::Config { .. }
        )
    }
}

/// Runs `f` to completion from synchronous store code on a tokio worker:
/// the worker's other sessions move to another thread meanwhile.
fn wait<F: Future>(f: F) -> F::Output {
    let h = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| h.block_on(f))
}

/// The wire error for a store failure on `key`; the cause goes to the log.
fn map_err(key: &Key, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::NotFound,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            Error::Exists
        }
        e => {
            warn!(key = %key, error = %e, "object store request failed");
            Error::Io
        }
    }
}

/// Lower-case hex of `b`.
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes of lower-case or upper-case hex `s`.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A kept digest as object metadata holds it: `ALG:HEX`.
fn digest_meta(sum: &Sum) -> String {
    format!("{}:{sum}", sum.algorithm().name())
}

/// The digest in object metadata, if any.
fn parse_digest(attrs: &Attributes) -> Option<Sum> {
    let v = attrs.get(&Attribute::Metadata(DIGEST_META.into()))?;
    let (alg, h) = v.as_ref().split_once(':')?;
    Sum::new(Algorithm::from_name(alg)?, &unhex(h)?)
}

/// Undoes `object_store`'s percent-encoding of a path part.
fn decode(part: &str) -> String {
    let b = part.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = part
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bounded_name(name: &str) -> Name {
    let mut n = Name::new();
    for c in name.chars() {
        if n.push(c).is_err() {
            break;
        }
    }
    n
}

/// Seconds since the Unix epoch of an object's time.
fn secs(t: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

/// The shared object-store root of a server.
pub struct ObjectRoot {
    /// Reads, writes, create-only PUTs.
    store: Arc<AmazonS3>,
    /// The same store with the create-only copy that passed the start-up
    /// check.
    copier: Arc<AmazonS3>,
    /// Whether that copy keeps object metadata (kept digests).
    copy_keeps_metadata: bool,
    /// Every key is under it (may be empty).
    prefix: Key,
    /// As given to `--store`, for logs and messages.
    pub url: String,
    /// Abandoned uploads older than this are deleted.
    max_age: Duration,
}

impl std::fmt::Debug for ObjectRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRoot")
            .field("url", &self.url)
            .finish()
    }
}

/// A builder for `url` from the standard `AWS_*` variables, with bounded
/// retries (a store that is down fails a request in seconds, not minutes).
fn builder(url: &str) -> AmazonS3Builder {
    AmazonS3Builder::from_env()
        .with_url(url)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
            ..RetryConfig::default()
        })
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            "5s",
        )
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "120s")
}

impl ObjectRoot {
    /// Connects to `url` and checks, before anything is served, that the
    /// bucket answers and honours create-only writes (a throwaway key
    /// written twice: the second must be refused) and create-only copies.
    /// `read_only` servers need neither.
    pub async fn connect(
        url: &str,
        max_age: Duration,
        read_only: bool,
    ) -> Result<ObjectRoot, StoreError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| StoreError::BadUrl(url.into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || bucket.contains(['?', '#', ' ']) {
            return Err(StoreError::BadUrl(url.into()));
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let skip = env("AWS_SKIP_SIGNATURE").is_some_and(|v| v == "true" || v == "1");
        if !skip && (env("AWS_ACCESS_KEY_ID").is_none() || env("AWS_SECRET_ACCESS_KEY").is_none()) {
            // Without them the client would ask the cloud's instance
            // metadata service, which a server off the cloud has not.
            return Err(StoreError::NoCredentials(url.into()));
        }
        // The HTTP client's TLS runs on ring, as the server's own does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = |source| StoreError::Config {
            url: url.into(),
            source,
        };
        let store = builder(url).build().map_err(config)?;
        let header = builder(url)
            .with_copy_if_not_exists(S3CopyIfNotExists::Header(
                "If-None-Match".into(),
                "*".into(),
            ))
            .build()
            .map_err(config)?;
        let multipart = builder(url)
            .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
            .build()
            .map_err(config)?;
        let prefix = Key::parse(prefix.trim_matches('/')).map_err(|e| config(e.into()))?;
        let store = Arc::new(store);
        let root = ObjectRoot {
            copier: store.clone(),
            store,
            copy_keeps_metadata: true,
            prefix,
            url: url.into(),
            max_age,
        };
        let unreachable = |why: String| StoreError::Unreachable {
            url: url.into(),
            why,
        };
        let check = tokio::time::timeout(Duration::from_secs(60), async {
            root.check(bucket, read_only, header, multipart).await
        });
        check
            .await
            .map_err(|_| unreachable("no answer within 60 s".into()))?
    }

    /// The start-up check ([`ObjectRoot::connect`]).
    async fn check(
        mut self,
        bucket: &str,
        read_only: bool,
        header: AmazonS3,
        multipart: AmazonS3,
    ) -> Result<ObjectRoot, StoreError> {
        let url = self.url.clone();
        // A missing bucket is a 404 with S3's NoSuchBucket code, which
        // the listing reports as a generic error.
        let missing = |e: &object_store::Error| {
            matches!(e, object_store::Error::NotFound { .. })
                || e.to_string().contains("NoSuchBucket")
        };
        let fail = |e: object_store::Error| match e {
            e if missing(&e) => StoreError::NoBucket {
                url: url.clone(),
                bucket: bucket.into(),
            },
            e => StoreError::Unreachable {
                url: url.clone(),
                why: e.to_string(),
            },
        };
        // Listing proves the bucket is there and readable.
        self.store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(fail)?;
        if read_only {
            return Ok(self);
        }
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Unreachable {
            url: url.clone(),
            why: format!("no randomness: {e}"),
        })?;
        let probe = self.key_of(&format!("{UPLOADS}/probe-{}", hex(&nonce)));
        let copy = self.key_of(&format!("{UPLOADS}/probe-{}-copy", hex(&nonce)));
        let create = PutOptions::from(PutMode::Create);
        let put = |_| {
            self.store
                .put_opts(&probe, PutPayload::from_static(b"1"), create.clone())
        };
        put(()).await.map_err(fail)?;
        let twice = put(()).await;
        let result = match twice {
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => {
                // Create-only copies: a header the store checks keeps the
                // metadata; S3's own way (a conditional multipart copy)
                // does not.
                let mut chosen = None;
                for (store, keeps) in [(header, true), (multipart, false)] {
                    let first = store.copy_if_not_exists(&probe, &copy).await;
                    let second = store.copy_if_not_exists(&probe, &copy).await;
                    let _ = self.store.delete(&copy).await;
                    if first.is_ok()
                        && matches!(second, Err(object_store::Error::AlreadyExists { .. }))
                    {
                        chosen = Some((store, keeps));
                        break;
                    }
                }
                match chosen {
                    Some((store, keeps)) => {
                        self.copier = Arc::new(store);
                        self.copy_keeps_metadata = keeps;
                        Ok(())
                    }
                    None => Err(StoreError::NoCreateOnly {
                        url: url.clone(),
                        what: "a copy onto an existing key",
                    }),
                }
            }
            Ok(_) => Err(StoreError::NoCreateOnly {
                url: url.clone(),
                what: "a PUT with If-None-Match: * onto an existing key",
            }),
            Err(e) => Err(fail(e)),
        };
        let _ = self.store.delete(&probe).await;
        result.map(|()| {
            info!(store = %self.url, copy_keeps_metadata = self.copy_keeps_metadata, "object store checked: create-only writes honoured");
            self
        })
    }

    /// The key of `rel` (a `/`-separated path under the prefix).
    fn key_of(&self, rel: &str) -> Key {
        let mut k = self.prefix.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            k = k.clone().join(part);
        }
        k
    }

    /// The key of a resolved client path; names in the reserved namespace
    /// are refused.
    fn key(&self, p: &FsPath) -> Result<Key, Error> {
        let s = p.to_str().ok_or(Error::InvalidPath)?;
        if s.split('/').any(|c| c.starts_with(RESERVED)) {
            return Err(Error::InvalidPath);
        }
        Ok(self.key_of(s))
    }

    /// Whether a file is stored at `key` (with its size and modification time).
    async fn head(&self, key: &Key) -> Result<Option<(u64, u64)>, Error> {
        match self.store.head(key).await {
            Ok(m) => Ok(Some((m.size, secs(m.last_modified)))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(map_err(key, e)),
        }
    }

    /// Whether anything is stored under `key/` (a directory).
    async fn is_dir(&self, key: &Key) -> Result<bool, Error> {
        if key.as_ref() == self.prefix.as_ref() {
            return Ok(true);
        }
        let mut s = self.store.list(Some(key));
        match s.next().await {
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(map_err(key, e)),
            None => Ok(false),
        }
    }

    /// `stat` of a resolved path.
    pub fn stat(&self, p: &FsPath) -> Result<Entry, Error> {
        let key = self.key(p)?;
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("/")
            .to_string();
        wait(async {
            if !p.as_os_str().is_empty() {
                if let Some((size, modified)) = self.head(&key).await? {
                    return Ok(Entry {
                        name: bounded_name(&name),
                        kind: Kind::File,
                        size,
                        modified,
                        mode: 0,
                    });
                }
            }
            match self.is_dir(&key).await? {
                true => Ok(Entry {
                    name: bounded_name(&name),
                    kind: Kind::Dir,
                    size: 0,
                    modified: 0,
                    mode: 0,
                }),
                false => Err(Error::NotFound),
            }
        })
    }

    /// `cd`: `p` must be a directory.
    pub fn check_dir(&self, p: &FsPath) -> Result<(), Error> {
        match self.stat(p)?.kind {
            Kind::Dir => Ok(()),
            _ => Err(Error::NotADirectory),
        }
    }

    /// A listing of the directory `p`, read whole (one `/`-delimited
    /// listing, paged by the client library).
    pub fn list(&self, p: &FsPath) -> Result<Listing, Error> {
        let key = self.key(p)?;
        let root = p.as_os_str().is_empty();
        wait(async {
            let prefix = (!root || !self.prefix.as_ref().is_empty()).then_some(&key);
            let r = self
                .store
                .list_with_delimiter(prefix)
                .await
                .map_err(|e| map_err(&key, e))?;
            let mut marker = false;
            let mut entries = VecDeque::new();
            for d in &r.common_prefixes {
                let name = d.filename().map(decode).unwrap_or_default();
                if !name.starts_with(RESERVED) && !name.is_empty() {
                    entries.push_back(Entry {
                        name: bounded_name(&name),
                        kind: Kind::Dir,
                        size: 0,
                        modified: 0,
                        mode: 0,
                    });
                }
            }
            for o in &r.objects {
                let name = o.location.filename().map(decode).unwrap_or_default();
                if name == DIR_MARKER {
                    marker = true;
                } else if !name.starts_with(RESERVED) && !name.is_empty() {
                    entries.push_back(Entry {
                        name: bounded_name(&name),
                        kind: Kind::File,
                        size: o.size,
                        modified: secs(o.last_modified),
                        mode: 0,
                    });
                }
            }
            if entries.is_empty() && !marker && !root && r.common_prefixes.is_empty() {
                return match self.head(&key).await? {
                    Some(_) => Err(Error::NotADirectory),
                    None => Err(Error::NotFound),
                };
            }
            Ok(Listing { entries })
        })
    }

    /// `mkdir`: a marker object, written create-only; an existing file or
    /// directory of that name is `Exists`, a missing parent `NotFound`.
    pub fn mkdir(&self, p: &FsPath) -> Result<(), Error> {
        if p.as_os_str().is_empty() {
            return Err(Error::Exists);
        }
        let key = self.key(p)?;
        let parent = self.key(p.parent().unwrap_or(FsPath::new("")))?;
        wait(async {
            if self.head(&key).await?.is_some() || self.is_dir(&key).await? {
                return Err(Error::Exists);
            }
            if self.head(&parent).await?.is_some() {
                return Err(Error::NotADirectory);
            }
            if !self.is_dir(&parent).await? {
                return Err(Error::NotFound);
            }
            let marker = key.clone().join(DIR_MARKER);
            self.store
                .put_opts(&marker, PutPayload::new(), PutMode::Create.into())
                .await
                .map(|_| ())
                .map_err(|e| map_err(&marker, e))
        })
    }

    /// `rm`: a file, or an empty directory (its marker).
    pub fn remove(&self, p: &FsPath) -> Result<(), Error> {
        if p.as_os_str().is_empty() {
            return Err(Error::Permission);
        }
        let key = self.key(p)?;
        wait(async {
            if self.head(&key).await?.is_some() {
                return self.store.delete(&key).await.map_err(|e| map_err(&key, e));
            }
            let mut s = self.store.list(Some(&key));
            let mut marker = None;
            while let Some(o) = s.next().await {
                let o = o.map_err(|e| map_err(&key, e))?;
                if o.location.filename() == Some(DIR_MARKER) && marker.is_none() {
                    marker = Some(o.location);
                } else {
                    return Err(Error::NotEmpty);
                }
            }
            match marker {
                Some(m) => self.store.delete(&m).await.map_err(|e| map_err(&m, e)),
                None => Err(Error::NotFound),
            }
        })
    }

    /// `mv` of a file: a copy (create-only unless `replace`), then the
    /// delete of `from`. Not atomic: a failure between the two leaves both
    /// (docs/SECURITY.md). Directories are refused.
    pub fn rename(&self, from: &FsPath, to: &FsPath, replace: bool) -> Result<(), Error> {
        let (f, t) = (self.key(from)?, self.key(to)?);
        if from.as_os_str().is_empty() || to.as_os_str().is_empty() {
            return Err(Error::InvalidPath);
        }
        wait(async {
            if self.head(&f).await?.is_none() {
                return match self.is_dir(&f).await? {
                    true => Err(Error::IsADirectory),
                    false => Err(Error::NotFound),
                };
            }
            if self.is_dir(&t).await? {
                return Err(Error::IsADirectory);
            }
            let parent = self.key(to.parent().unwrap_or(FsPath::new("")))?;
            if !self.is_dir(&parent).await? {
                return Err(Error::NotFound);
            }
            let r = match replace {
                true => self.store.copy(&f, &t).await,
                false => self.copier.copy_if_not_exists(&f, &t).await,
            };
            r.map_err(|e| map_err(&t, e))?;
            self.store.delete(&f).await.map_err(|e| map_err(&f, e))
        })
    }

    /// Opens a file for a get: its size, version (ETag) and kept digest.
    pub fn open(self: &Arc<Self>, p: &FsPath) -> Result<Reading, Error> {
        if p.as_os_str().is_empty() {
            return Err(Error::IsADirectory);
        }
        let key = self.key(p)?;
        wait(async {
            let opts = GetOptions {
                head: true,
                ..GetOptions::default()
            };
            match self.store.get_opts(&key, opts).await {
                Ok(r) => Ok(Reading {
                    root: self.clone(),
                    size: r.meta.size,
                    etag: r.meta.e_tag.clone(),
                    digest: parse_digest(&r.attributes),
                    key,
                    stream: None,
                    pending: Bytes::new(),
                    pos: 0,
                }),
                Err(object_store::Error::NotFound { .. }) => match self.is_dir(&key).await? {
                    true => Err(Error::IsADirectory),
                    false => Err(Error::NotFound),
                },
                Err(e) => Err(map_err(&key, e)),
            }
        })
    }

    /// The digest of a whole file: the kept one from its metadata if it is
    /// of `alg`, else computed by reading it.
    pub fn digest(self: &Arc<Self>, p: &FsPath, alg: Algorithm) -> Result<Sum, Error> {
        let mut r = self.open(p)?;
        if let Some(sum) = r.digest.filter(|s| s.algorithm() == alg) {
            return Ok(sum);
        }
        let mut h = Hasher::new(alg).ok_or(Error::Internal)?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut at = 0;
        while at < r.size {
            let n = r.read_at(at, &mut buf)?;
            if n == 0 {
                return Err(Error::Io);
            }
            h.update(&buf[..n]);
            at += n as u64;
        }
        Ok(h.finish())
    }

    /// The directory of the uploads of `target`.
    fn uploads_of(&self, target: &str) -> Key {
        self.key_of(&format!("{UPLOADS}/{}", hex(target.as_bytes())))
    }

    /// Prepares a put of `size` bytes to `p` ([`ferry_core::app::Store::begin_upload`]):
    /// the overwrite policy against what is stored now (checked again,
    /// atomically, at commit), and with `resume` the longest held prefix of
    /// an earlier attempt at this name and size, from any server.
    pub fn begin_upload(
        self: &Arc<Self>,
        p: &FsPath,
        size: u64,
        policy: Overwrite,
        resume: bool,
    ) -> Result<Writing, Error> {
        if p.as_os_str().is_empty() {
            return Err(Error::IsADirectory);
        }
        let key = self.key(p)?;
        wait(async {
            let target = self.choose_target(p, &key, policy).await?;
            crate::fsroot::check_bound(&target)?;
            let target_s = target.to_str().ok_or(Error::InvalidPath)?.to_string();
            let parent = self.key(p.parent().unwrap_or(FsPath::new("")))?;
            if self.head(&parent).await?.is_some() && !parent.as_ref().is_empty() {
                return Err(Error::NotADirectory);
            }
            let uploads = self.uploads_of(&target_s);
            let refs = match resume {
                true => self.held(&uploads, size).await?,
                false => Vec::new(),
            };
            let mut nonce = [0u8; 12];
            getrandom::fill(&mut nonce).map_err(|_| Error::Internal)?;
            let attempt = uploads.clone().join(hex(&nonce));
            let offset = refs.last().map_or(0, |r| r.start + r.len);
            let mut w = Writing {
                root: self.clone(),
                key: self.key(&target)?,
                target,
                create: policy != Overwrite::Replace,
                size,
                offset,
                attempt,
                uploads,
                refs,
                buf: Vec::new(),
                in_flight: VecDeque::new(),
                state_written: false,
                cache: None,
                failed: None,
            };
            if offset > 0 {
                // The attempt names the chunks it took over, so a later
                // resume (through any server) finds them.
                w.write_state().await?;
            }
            Ok(w)
        })
    }

    /// The name a put of `p` goes to under `policy` (keep-both: the first
    /// free of `NAME`, `NAME.new`, `NAME.new.1`, …).
    async fn choose_target(
        &self,
        p: &FsPath,
        key: &Key,
        policy: Overwrite,
    ) -> Result<PathBuf, Error> {
        if self.is_dir(key).await? {
            return Err(Error::IsADirectory);
        }
        if self.head(key).await?.is_none() {
            return Ok(p.to_path_buf());
        }
        match policy {
            Overwrite::Replace => Ok(p.to_path_buf()),
            Overwrite::Fail => Err(Error::Exists),
            Overwrite::KeepBoth => {
                let base = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or(Error::InvalidPath)?;
                let parent = p.parent().unwrap_or(FsPath::new(""));
                for n in 0u32..10_000 {
                    let cand = parent.join(ferry_core::naming::keep_both_name(base, n).to_string());
                    let k = self.key(&cand)?;
                    if self.head(&k).await?.is_none() && !self.is_dir(&k).await? {
                        return Ok(cand);
                    }
                }
                Err(Error::Exists)
            }
        }
    }

    /// The longest run of held chunks from offset 0 among the earlier
    /// attempts under `uploads` of a put of `size` bytes.
    async fn held(&self, uploads: &Key, size: u64) -> Result<Vec<ChunkRef>, Error> {
        let mut attempts: BTreeMap<String, Attempt> = BTreeMap::new();
        let mut s = self.store.list(Some(uploads));
        while let Some(o) = s.next().await {
            let o = o.map_err(|e| map_err(uploads, e))?;
            let parts: Vec<String> = o
                .location
                .prefix_match(uploads)
                .map(|p| p.map(|x| x.as_ref().to_string()).collect())
                .unwrap_or_default();
            let [attempt, name] = parts.as_slice() else {
                continue;
            };
            let a = attempts.entry(attempt.clone()).or_default();
            if name == "state" {
                a.0 = Some(o.location);
            } else if let Some(off) = name.strip_prefix('c').and_then(|n| n.parse().ok()) {
                a.1.insert(off, (o.location, o.size));
            }
        }
        let mut best: Vec<ChunkRef> = Vec::new();
        for (_, (state, chunks)) in attempts {
            let Some(state) = state else { continue };
            let text = match self.store.get(&state).await {
                Ok(r) => r.bytes().await.map_err(|e| map_err(&state, e))?,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(map_err(&state, e)),
            };
            let Some((held_size, mut refs)) = parse_state(&text, uploads) else {
                continue;
            };
            if held_size != size {
                continue;
            }
            let mut end = refs.last().map_or(0, |r| r.start + r.len);
            for (off, (key, len)) in chunks {
                if off == end && len > 0 && end + len <= size {
                    refs.push(ChunkRef {
                        key,
                        start: off,
                        len,
                    });
                    end += len;
                }
            }
            if end > best.last().map_or(0, |r| r.start + r.len) {
                best = refs;
            }
        }
        Ok(best)
    }

    /// Deletes every object under `dir`.
    async fn delete_all(&self, dir: &Key) {
        let list = self
            .store
            .list(Some(dir))
            .map(|o| o.map(|o| o.location))
            .boxed();
        let mut out = self.store.delete_stream(list);
        while let Some(r) = out.next().await {
            if let Err(e) = r {
                warn!(dir = %dir, error = %e, "cleaning up an upload");
            }
        }
    }

    /// How often [`ObjectRoot::sweep`] runs.
    pub fn sweep_interval(&self) -> Duration {
        (self.max_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600))
    }

    /// Deletes the uploads abandoned longer than `--partial-max-age`
    /// (counted from their newest object), whichever server began them;
    /// returns how many attempts went.
    pub async fn sweep(&self) -> usize {
        let uploads = self.key_of(UPLOADS);
        let mut newest: BTreeMap<Key, SystemTime> = BTreeMap::new();
        let mut s = self.store.list(Some(&uploads));
        while let Some(Ok(o)) = s.next().await {
            let parts: Vec<_> = o
                .location
                .prefix_match(&uploads)
                .map(|p| p.collect())
                .unwrap_or_default();
            if parts.len() != 3 {
                continue;
            }
            let dir = uploads
                .clone()
                .join(parts[0].clone())
                .clone()
                .join(parts[1].clone());
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs(o.last_modified));
            let e = newest.entry(dir).or_insert(t);
            *e = (*e).max(t);
        }
        let now = SystemTime::now();
        let mut n = 0;
        for (dir, t) in newest {
            if now.duration_since(t).unwrap_or_default() > self.max_age {
                self.delete_all(&dir).await;
                n += 1;
            }
        }
        if n > 0 {
            info!(store = %self.url, attempts = n, "abandoned uploads deleted (--partial-max-age)");
        }
        n
    }
}

/// An earlier upload attempt as listed: its state object and its chunks
/// (offset → key, length).
type Attempt = (Option<Key>, BTreeMap<u64, (Key, u64)>);

/// Parses a state object: the put's size and the chunks it took over.
fn parse_state(text: &[u8], uploads: &Key) -> Option<(u64, Vec<ChunkRef>)> {
    let text = std::str::from_utf8(text).ok()?;
    let mut lines = text.lines();
    if lines.next()? != STATE_MAGIC {
        return None;
    }
    let size = lines.next()?.strip_prefix("size ")?.parse().ok()?;
    let mut refs = Vec::new();
    for l in lines {
        let mut f = l.strip_prefix("ref ")?.split(' ');
        let (attempt, start, len) = (f.next()?, f.next()?.parse().ok()?, f.next()?.parse().ok()?);
        refs.push(ChunkRef {
            key: uploads
                .clone()
                .join(attempt)
                .clone()
                .join(format!("c{start:020}")),
            start,
            len,
        });
    }
    Some((size, refs))
}

/// One chunk of an upload's body: `len` bytes from `start`, in `key`.
#[derive(Debug, Clone)]
struct ChunkRef {
    key: Key,
    start: u64,
    len: u64,
}

/// A file being read for a get: one ranged GET streamed from the offset
/// asked for, restarted only when the reader jumps; the first request's
/// ETag pins the version (a file replaced mid-get fails, never mixes).
pub struct Reading {
    root: Arc<ObjectRoot>,
    key: Key,
    /// Its size.
    pub size: u64,
    etag: Option<String>,
    /// The digest kept in its metadata.
    pub digest: Option<Sum>,
    stream: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    pending: Bytes,
    pos: u64,
}

impl Reading {
    /// Reads from `at` into `buf`; 0 at the end.
    pub fn read_at(&mut self, at: u64, buf: &mut [u8]) -> Result<usize, Error> {
        if at >= self.size || buf.is_empty() {
            return Ok(0);
        }
        if at != self.pos || (self.stream.is_none() && self.pending.is_empty()) {
            self.pending = Bytes::new();
            self.pos = at;
            let opts = GetOptions {
                range: Some(GetRange::Offset(at)),
                if_match: self.etag.clone(),
                ..GetOptions::default()
            };
            let (store, key) = (self.root.store.clone(), self.key.clone());
            let r = wait(async move { store.get_opts(&key, opts).await });
            self.stream = Some(r.map_err(|e| map_err(&self.key, e))?.into_stream());
        }
        if self.pending.is_empty() {
            let Some(s) = self.stream.as_mut() else {
                return Err(Error::Io);
            };
            match wait(s.next()) {
                Some(Ok(b)) => self.pending = b,
                Some(Err(e)) => {
                    self.stream = None;
                    return Err(map_err(&self.key, e));
                }
                // Shorter than it was: the file changed.
                None => {
                    self.stream = None;
                    return Err(Error::Io);
                }
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending = self.pending.slice(n..);
        self.pos += n as u64;
        Ok(n)
    }
}

/// An upload being received: the body is cut into [`CHUNK`] objects as it
/// arrives (a few PUTs in flight), so what a resume needs is in the store.
pub struct Writing {
    root: Arc<ObjectRoot>,
    /// The resolved name it will be stored under.
    pub target: PathBuf,
    key: Key,
    /// Create-only (`fail`, `keep-both`), else replace.
    create: bool,
    /// The announced size.
    pub size: u64,
    /// Bytes held from an earlier attempt.
    pub offset: u64,
    /// This attempt's directory, and its target's.
    attempt: Key,
    uploads: Key,
    /// The chunks stored so far, in order (taken over ones first).
    refs: Vec<ChunkRef>,
    /// Body bytes not yet in a chunk.
    buf: Vec<u8>,
    in_flight: VecDeque<tokio::task::JoinHandle<Result<(), Error>>>,
    state_written: bool,
    /// The chunk last read back for a resume's prefix hash.
    cache: Option<(u64, Bytes)>,
    failed: Option<Error>,
}

impl Writing {
    /// Where the next byte goes.
    fn stored_end(&self) -> u64 {
        self.refs.last().map_or(0, |r| r.start + r.len)
    }

    async fn write_state(&mut self) -> Result<(), Error> {
        let mut s = format!("{STATE_MAGIC}\nsize {}\n", self.size);
        for r in self
            .refs
            .iter()
            .filter(|r| !r.key.as_ref().starts_with(self.attempt.as_ref()))
        {
            let attempt = r
                .key
                .prefix_match(&self.uploads)
                .and_then(|mut p| p.next())
                .map(|p| p.as_ref().to_string())
                .unwrap_or_default();
            s.push_str(&format!("ref {attempt} {} {}\n", r.start, r.len));
        }
        let key = self.attempt.clone().join("state");
        self.root
            .store
            .put(&key, PutPayload::from(s.into_bytes()))
            .await
            .map_err(|e| map_err(&key, e))?;
        self.state_written = true;
        Ok(())
    }

    /// Stores the buffered bytes as the next chunk (a PUT in flight).
    fn flush(&mut self) -> Result<(), Error> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if !self.state_written {
            wait(self.write_state())?;
        }
        while self.in_flight.len() >= IN_FLIGHT {
            self.wait_one()?;
        }
        let start = self.stored_end();
        let data = std::mem::take(&mut self.buf);
        let len = data.len() as u64;
        let key = self.attempt.clone().join(format!("c{start:020}"));
        self.refs.push(ChunkRef {
            key: key.clone(),
            start,
            len,
        });
        let store = self.root.store.clone();
        self.in_flight.push_back(tokio::spawn(async move {
            store
                .put(&key, PutPayload::from(data))
                .await
                .map(|_| ())
                .map_err(|e| map_err(&key, e))
        }));
        Ok(())
    }

    fn wait_one(&mut self) -> Result<(), Error> {
        let Some(h) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let r = wait(h).unwrap_or(Err(Error::Internal));
        if let Err(e) = r {
            self.failed = Some(e);
            return Err(e);
        }
        Ok(())
    }

    fn wait_all(&mut self) -> Result<(), Error> {
        let mut r = Ok(());
        while !self.in_flight.is_empty() {
            r = r.and(self.wait_one());
        }
        r
    }

    /// Appends body bytes.
    pub fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let mut data = data;
        while !data.is_empty() {
            let take = (CHUNK - self.buf.len()).min(data.len());
            if self.buf.capacity() == 0 {
                let left = self.size - self.stored_end();
                self.buf
                    .reserve(CHUNK.min(usize::try_from(left).unwrap_or(CHUNK)));
            }
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == CHUNK {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Reads back held bytes (below the accepted offset) for the resume's
    /// prefix hash, a chunk at a time.
    pub fn read_at(&mut self, at: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let Some(r) = self
            .refs
            .iter()
            .find(|r| r.start <= at && at < r.start + r.len)
            .cloned()
        else {
            return Ok(0);
        };
        if self.cache.as_ref().is_none_or(|(s, _)| *s != r.start) {
            let store = self.root.store.clone();
            let key = r.key.clone();
            let b = wait(async move { store.get(&key).await?.bytes().await })
                .map_err(|e| map_err(&r.key, e))?;
            if b.len() as u64 != r.len {
                return Err(Error::Io);
            }
            self.cache = Some((r.start, b));
        }
        let Some((start, bytes)) = &self.cache else {
            return Err(Error::Internal);
        };
        let from = usize::try_from(at - start).map_err(|_| Error::Internal)?;
        let n = buf.len().min(bytes.len() - from);
        buf[..n].copy_from_slice(&bytes[from..from + n]);
        Ok(n)
    }

    /// The digest matched: makes the file visible under its name, whole,
    /// keeping `sum` in its metadata. Create-only unless replacing, so of
    /// two puts racing for one name through two servers exactly one wins.
    pub fn commit(mut self, sum: Sum) -> Result<(), Error> {
        self.wait_all()?;
        let attrs =
            Attributes::from_iter([(Attribute::Metadata(DIGEST_META.into()), digest_meta(&sum))]);
        let root = self.root.clone();
        let r = wait(async {
            if self.refs.is_empty() {
                // One chunk's worth, still in memory: one PUT.
                let mode = match self.create {
                    true => PutMode::Create,
                    false => PutMode::Overwrite,
                };
                let opts = PutOptions {
                    mode,
                    attributes: attrs,
                    ..PutOptions::default()
                };
                let body = PutPayload::from(std::mem::take(&mut self.buf));
                return root
                    .store
                    .put_opts(&self.key, body, opts)
                    .await
                    .map(|_| ())
                    .map_err(|e| map_err(&self.key, e));
            }
            if self.create && root.head(&self.key).await?.is_some() {
                return Err(Error::Exists);
            }
            let whole = self.attempt.clone().join("whole");
            let dest = match self.create {
                true => whole.clone(),
                false => self.key.clone(),
            };
            self.assemble(&dest, attrs).await?;
            if self.create {
                let r = root.copier.copy_if_not_exists(&whole, &self.key).await;
                r.map_err(|e| map_err(&self.key, e))?;
            }
            Ok(())
        });
        // The attempt and those it took over are done with, either way
        // (a refused put's bytes cannot be stored under this name).
        self.cleanup();
        r
    }

    /// Writes the held chunks and the buffered tail to `dest` as one
    /// multipart upload.
    async fn assemble(&mut self, dest: &Key, attrs: Attributes) -> Result<(), Error> {
        let opts = PutMultipartOptions {
            attributes: attrs,
            ..PutMultipartOptions::default()
        };
        let upload = self
            .root
            .store
            .put_multipart_opts(dest, opts)
            .await
            .map_err(|e| map_err(dest, e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        // The next chunk is fetched while the previous one uploads.
        let mut next = self.refs.first().map(|r| self.fetch(r));
        for i in 0..self.refs.len() {
            let Some(fut) = next.take() else { break };
            let r = fut.await.unwrap_or(Err(Error::Internal));
            let bytes = match r {
                Ok(b) => b,
                Err(e) => {
                    w.abort().await.ok();
                    return Err(e);
                }
            };
            next = self.refs.get(i + 1).map(|r| self.fetch(r));
            if let Err(e) = w.wait_for_capacity(4).await {
                return Err(map_err(dest, e));
            }
            w.put(bytes);
        }
        w.write(&self.buf);
        w.finish().await.map(|_| ()).map_err(|e| map_err(dest, e))
    }

    fn fetch(&self, r: &ChunkRef) -> tokio::task::JoinHandle<Result<Bytes, Error>> {
        let (store, r) = (self.root.store.clone(), r.clone());
        tokio::spawn(async move {
            let b = async { store.get(&r.key).await?.bytes().await }
                .await
                .map_err(|e| map_err(&r.key, e))?;
            match b.len() as u64 == r.len {
                true => Ok(b),
                false => Err(Error::Io),
            }
        })
    }

    /// Deletes this attempt and those it took chunks over from, in the
    /// background.
    fn cleanup(&mut self) {
        let mut dirs: Vec<Key> = vec![self.attempt.clone()];
        for r in &self.refs {
            if let Some(a) = r.key.prefix_match(&self.uploads).and_then(|mut p| p.next()) {
                let d = self.uploads.clone().join(a);
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
        for h in self.in_flight.drain(..) {
            h.abort();
        }
        let root = self.root.clone();
        tokio::spawn(async move {
            for d in dirs {
                root.delete_all(&d).await;
            }
        });
    }

    /// The upload ends unstored: stores what is buffered as a chunk too,
    /// so a resume (through any server) continues after it.
    pub fn keep(mut self) {
        if self.failed.is_none() && self.flush().is_ok() {
            let _ = self.wait_all();
        }
    }

    /// The digest failed: deletes what arrived.
    pub fn discard(mut self) {
        let _ = self.wait_all();
        self.cleanup();
    }
}

/// A directory listing, read whole at `list`.
pub struct Listing {
    entries: VecDeque<Entry>,
}

impl Listing {
    /// The next entry.
    pub fn next_entry(&mut self) -> Option<Entry> {
        self.entries.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip() {
        let uploads = Key::from("p/.ferry-uploads/6162");
        let text = format!("{STATE_MAGIC}\nsize 100\nref aa 0 8\nref bb 8 4\n");
        let (size, refs) = parse_state(text.as_bytes(), &uploads).expect("parses");
        assert_eq!(size, 100);
        assert_eq!(refs.len(), 2);
        assert_eq!(
            refs[1].key.as_ref(),
            "p/.ferry-uploads/6162/bb/c00000000000000000008"
        );
        assert!(parse_state(b"other\nsize 1\n", &uploads).is_none());
    }

    #[test]
    fn digest_metadata_round_trip() {
        let sum = ferry_core::digest::digest(Algorithm::Md5, b"abc").expect("md5");
        let attrs =
            Attributes::from_iter([(Attribute::Metadata(DIGEST_META.into()), digest_meta(&sum))]);
        assert_eq!(parse_digest(&attrs), Some(sum));
        assert_eq!(decode("a%23b%25"), "a#b%");
    }
}
