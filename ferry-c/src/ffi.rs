//! The checks every entry point makes before it trusts a C pointer, the
//! caller-owned byte buffers, and the panic guard. All of ferry-c's
//! pointer-to-reference conversions go through here.

use core::ffi::{c_char, CStr};
use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use crate::error::{CResult, FerryError};

/// A caller-owned byte buffer handed to ferry-core as its frame buffer.
/// Valid from `ferry_*_init` to `ferry_*_deinit` by the C contract (the
/// buffer must outlive the object and nothing else may touch it).
pub(crate) struct RawBuf {
    ptr: NonNull<u8>,
    len: usize,
}

impl RawBuf {
    /// A buffer over `ptr..ptr+len`; NULL is refused.
    pub(crate) fn new(ptr: *mut u8, len: usize) -> CResult<RawBuf> {
        let ptr = NonNull::new(ptr).ok_or(FerryError::FERRY_ERROR_NULL_POINTER)?;
        Ok(RawBuf { ptr, len })
    }

    fn range(&self) -> (usize, usize) {
        let start = self.ptr.as_ptr() as usize;
        (start, start.saturating_add(self.len))
    }
}

impl AsRef<[u8]> for RawBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the caller promised `len` valid bytes at `ptr`, owned by
        // this object until deinit (checked non-NULL and not overlapping
        // the object or the other buffer at init).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl AsMut<[u8]> for RawBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `as_ref`; `&mut self` makes this the only view.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// Fails unless the memory ranges `a` and `b` are disjoint.
fn disjoint(a: (usize, usize), b: (usize, usize)) -> CResult {
    if a.0 < b.1 && b.0 < a.1 {
        return Err(FerryError::FERRY_ERROR_INVALID_ARGUMENT);
    }
    Ok(())
}

/// Checks the memory given to `ferry_*_init` for a `T`, and the two frame
/// buffers: non-NULL, aligned, long enough, and no two overlapping.
pub(crate) fn check_init<T>(
    mem: *mut u8,
    mem_len: usize,
    bufs: [&RawBuf; 2],
) -> CResult<NonNull<T>> {
    let mem = NonNull::new(mem).ok_or(FerryError::FERRY_ERROR_NULL_POINTER)?;
    if mem.as_ptr() as usize % align_of::<T>() != 0 {
        return Err(FerryError::FERRY_ERROR_MISALIGNED);
    }
    if mem_len < size_of::<T>() {
        return Err(FerryError::FERRY_ERROR_TOO_SMALL);
    }
    let start = mem.as_ptr() as usize;
    let obj = (start, start.saturating_add(size_of::<T>()));
    disjoint(obj, bufs[0].range())?;
    disjoint(obj, bufs[1].range())?;
    disjoint(bufs[0].range(), bufs[1].range())?;
    Ok(mem.cast())
}

/// What each object starts with: a tag telling an initialised object from
/// stray memory, whether a panic left it unusable, and whether a call is
/// running on it (a store callback calling back into its own server is
/// refused instead of aliasing the object).
#[repr(C)]
pub(crate) struct Header {
    magic: u32,
    poisoned: bool,
    busy: bool,
}

impl Header {
    pub(crate) const fn new(magic: u32) -> Header {
        Header {
            magic,
            poisoned: false,
            busy: false,
        }
    }
}

/// An object C holds a pointer to. Its Rust layout is left to the
/// compiler (so cbindgen shows C an opaque type); `HEADER` says where its
/// [`Header`] is.
pub(crate) trait Object {
    /// Its tag: distinct per type, so a client pointer passed as a
    /// server's is refused.
    const MAGIC: u32;
    /// `offset_of!` the header.
    const HEADER: usize;
    fn header(&mut self) -> &mut Header;
    /// Hands what the object holds back to C before it is dropped.
    fn release(&mut self) {}
}

/// Reads the tag of the object at `ptr` without forming a reference.
///
/// # Safety
/// `ptr` is non-NULL, aligned, and points at `size_of::<T>()` readable
/// bytes.
unsafe fn magic<T: Object>(ptr: *mut T) -> u32 {
    // SAFETY: the header lies at `T::HEADER` inside the object and the
    // magic first in it (`repr(C)`), aligned as the object is; the bytes
    // are readable by the contract.
    unsafe {
        ptr.cast::<u8>()
            .add(T::HEADER)
            .cast::<u32>()
            .read_volatile()
    }
}

/// Ends the object at `ptr`: hands its handles back (unless a panic
/// poisoned it), drops it and clears its tag, so the pointer is refused
/// from then on. A poisoned object is ended too: that is how C recovers.
///
/// # Safety
/// As [`object`].
pub(crate) unsafe fn deinit<T: Object>(ptr: *mut T) -> FerryError {
    let r = catch(|| {
        // SAFETY: forwarded contract; a poisoned object passes here.
        let obj = match unsafe { object(ptr) } {
            Ok(obj) => {
                obj.header().busy = true;
                obj.release();
                obj
            }
            // SAFETY: checked by `object` but for the poison flag.
            Err(FerryError::FERRY_ERROR_PANIC) => unsafe { &mut *ptr },
            Err(e) => return Err(e),
        };
        obj.header().magic = 0;
        // SAFETY: initialised by `ferry_*_init`, untagged above, so never
        // used again.
        unsafe { core::ptr::drop_in_place(obj) };
        Ok(())
    });
    if r == Err(FerryError::FERRY_ERROR_PANIC)
        && !ptr.is_null()
        && ptr as usize % align_of::<T>() == 0
    {
        // SAFETY: as `object`. A panic mid-release: untag it anyway.
        if unsafe { magic(ptr) } == T::MAGIC {
            // SAFETY: a tagged object.
            unsafe { (*ptr).header().magic = 0 };
        }
    }
    done(r)
}

/// The object at `ptr`, checked: non-NULL, aligned, tagged as initialised.
/// The tag is read through a raw pointer first, so stray memory is
/// refused before a reference to it exists.
///
/// # Safety
/// `ptr` is NULL or points at `size_of::<T>()` readable bytes (the C
/// contract: memory the caller gave `ferry_*_init`).
pub(crate) unsafe fn object<'a, T: Object>(ptr: *mut T) -> CResult<&'a mut T> {
    if ptr.is_null() {
        return Err(FerryError::FERRY_ERROR_NULL_POINTER);
    }
    if ptr as usize % align_of::<T>() != 0 {
        return Err(FerryError::FERRY_ERROR_MISALIGNED);
    }
    // SAFETY: checked non-NULL and aligned; readable by the contract.
    if unsafe { magic(ptr) } != T::MAGIC {
        return Err(FerryError::FERRY_ERROR_NOT_INITIALIZED);
    }
    // A call into this object is running further up the stack: this one
    // comes from inside it (a store callback). Read through the raw
    // pointer: no second reference to the object may be made.
    // SAFETY: the header of a tagged object, as `magic` reads it.
    let busy = unsafe {
        let header = ptr.cast::<u8>().add(T::HEADER).cast::<Header>();
        core::ptr::addr_of!((*header).busy).read_volatile()
    };
    if busy {
        return Err(FerryError::FERRY_ERROR_BAD_USAGE);
    }
    // SAFETY: tagged by `ferry_*_init`, so a valid `T`; C does not call in
    // from two threads at once on one object (docs/C-API.md#threads).
    let obj = unsafe { &mut *ptr };
    if obj.header().poisoned {
        return Err(FerryError::FERRY_ERROR_PANIC);
    }
    Ok(obj)
}

/// Runs `f` on the checked object at `ptr`; a panic in it poisons the
/// object and returns `FERRY_ERROR_PANIC`.
///
/// # Safety
/// As [`object`].
pub(crate) unsafe fn with<T: Object>(ptr: *mut T, f: impl FnOnce(&mut T) -> CResult) -> FerryError {
    let mut entered = false;
    let r = catch(|| {
        // SAFETY: forwarded contract.
        let obj = unsafe { object(ptr) }?;
        entered = true;
        obj.header().busy = true;
        f(obj)
    });
    if entered {
        // SAFETY: `ptr` passed the checks and `f`'s borrow has ended.
        let header = unsafe { (*ptr).header() };
        header.busy = false;
        if r == Err(FerryError::FERRY_ERROR_PANIC) {
            header.poisoned = true;
        }
    }
    done(r)
}

/// The code for a result.
pub(crate) fn done(r: CResult) -> FerryError {
    match r {
        Ok(()) => FerryError::FERRY_OK,
        Err(e) => e,
    }
}

/// Runs `f`, turning a panic into `FERRY_ERROR_PANIC` (host builds).
#[cfg(feature = "std")]
pub(crate) fn catch<R>(f: impl FnOnce() -> CResult<R>) -> CResult<R> {
    std::panic::catch_unwind(core::panic::AssertUnwindSafe(f))
        .unwrap_or(Err(FerryError::FERRY_ERROR_PANIC))
}

/// Runs `f`; a panic goes to the panic handler (`ferry_panic`).
#[cfg(not(feature = "std"))]
pub(crate) fn catch<R>(f: impl FnOnce() -> CResult<R>) -> CResult<R> {
    f()
}

/// A NUL-terminated UTF-8 string from C.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn c_str<'a>(s: *const c_char) -> CResult<&'a str> {
    if s.is_null() {
        return Err(FerryError::FERRY_ERROR_NULL_POINTER);
    }
    // SAFETY: the caller's contract.
    let s = unsafe { CStr::from_ptr(s) };
    s.to_str()
        .map_err(|_| FerryError::FERRY_ERROR_INVALID_ARGUMENT)
}

/// `len` bytes at `ptr`; NULL is allowed only for an empty slice.
///
/// # Safety
/// `ptr` is NULL or points at `len` readable bytes that outlive `'a`.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> CResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FerryError::FERRY_ERROR_NULL_POINTER);
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// `len` writable bytes at `ptr`; NULL is allowed only for an empty slice.
///
/// # Safety
/// `ptr` is NULL or points at `len` writable bytes, not aliased, that
/// outlive `'a`.
pub(crate) unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize) -> CResult<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(FerryError::FERRY_ERROR_NULL_POINTER);
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// Writes `value` through an out-pointer, refusing NULL.
///
/// # Safety
/// `out` is NULL or valid for a write of a `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T) -> CResult {
    if out.is_null() {
        return Err(FerryError::FERRY_ERROR_NULL_POINTER);
    }
    // SAFETY: the caller's contract; `write` drops nothing old.
    unsafe { out.write(value) };
    Ok(())
}

/// Copies `s` into `dst` with a NUL after it; returns the length without
/// the NUL. `dst` is sized for the longest string the protocol carries.
pub(crate) fn copy_text(dst: &mut [u8], s: &[u8]) -> usize {
    let n = s.len().min(dst.len().saturating_sub(1));
    dst[..n].copy_from_slice(&s[..n]);
    if let Some(nul) = dst.get_mut(n) {
        *nul = 0;
    }
    n
}
