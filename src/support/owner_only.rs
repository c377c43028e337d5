//! Owner-only files on Windows, where who may read a file is its access list rather than a mode:
//! the list a secret is given (the current user alone, nothing inherited from its folder, which
//! is what `chmod 600` gives on Unix) and the check that refuses a secret others can read or
//! change, as ssh refuses a private key with a loose access list.
//!
//! A file under the user's profile already inherits an owner-only list, but a token or key can be
//! written anywhere a person names (a shared drive, `C:\Users\Public`), where inheritance would
//! hand it to every user of the machine; so the list is set explicitly and protected.

use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_SUCCESS, GENERIC_ALL, GENERIC_READ, GENERIC_WRITE, HANDLE, LocalFree,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW,
    GetNamedSecurityInfoW, SDDL_REVISION_1, SE_FILE_OBJECT, SetNamedSecurityInfoW,
};
use windows_sys::Win32::Security::{
    ACCESS_ALLOWED_ACE, ACL, ACL_SIZE_INFORMATION, AclSizeInformation, DACL_SECURITY_INFORMATION,
    EqualSid, GetAce, GetAclInformation, GetSecurityDescriptorDacl, GetTokenInformation,
    INHERIT_ONLY_ACE, IsWellKnownSid, PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
    PSID, TOKEN_QUERY, TOKEN_USER, TokenUser, WinBuiltinAdministratorsSid, WinLocalSystemSid,
};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_APPEND_DATA, FILE_READ_DATA, FILE_WRITE_DATA, WRITE_DAC, WRITE_OWNER,
};
use windows_sys::Win32::System::SystemServices::ACCESS_ALLOWED_ACE_TYPE;
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// Rights that expose a secret when someone else holds them: reading it, changing it, or
/// changing who may.
const EXPOSING: u32 = FILE_READ_DATA
    | FILE_WRITE_DATA
    | FILE_APPEND_DATA
    | WRITE_DAC
    | WRITE_OWNER
    | GENERIC_READ
    | GENERIC_WRITE
    | GENERIC_ALL;

/// Gives `path` an access list naming the current user alone, with full control, and stops it
/// inheriting its folder's entries. A folder's entry is inherited by what is later made in it.
///
/// # Errors
/// The current user or the file's access list cannot be read or written.
pub fn restrict(path: &Path, folder: bool) -> io::Result<()> {
    let sid = CurrentUser::open()?.sid_text()?;
    let inherit = if folder { "OICI" } else { "" };
    set_list(path, &format!("D:P(A;{inherit};FA;;;{sid})"))
}

/// Lets everyone (S-1-1-0) read and change `path`, as an inherited list on a shared drive may.
#[cfg(test)]
pub(crate) fn share_with_everyone(path: &Path) -> io::Result<()> {
    set_list(path, "D:P(A;;FA;;;WD)")
}

/// Whether this process runs under Wine (its ntdll exports `wine_get_version`), for the tests
/// that Wine's access lists cannot pass.
#[cfg(test)]
pub(crate) fn under_wine() -> bool {
    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn GetModuleHandleA(name: *const u8) -> *mut core::ffi::c_void;
        fn GetProcAddress(
            module: *mut core::ffi::c_void,
            name: *const u8,
        ) -> Option<unsafe extern "system" fn() -> isize>;
    }
    // SAFETY: both names are NUL-terminated; a module handle from GetModuleHandleA needs no freeing.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

/// Replaces `path`'s access list with the protected one an SDDL string describes.
fn set_list(path: &Path, sddl: &str) -> io::Result<()> {
    let sddl = wide(sddl.encode_utf16());
    let mut descriptor: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated; the descriptor is freed by `Local`.
    check(unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            ptr::null_mut(),
        )
    })?;
    let _descriptor = Local(descriptor);
    let (mut present, mut dacl, mut defaulted) = (0, ptr::null_mut(), 0);
    // SAFETY: `descriptor` is the valid descriptor made above.
    check(unsafe {
        GetSecurityDescriptorDacl(descriptor, &mut present, &mut dacl, &mut defaulted)
    })?;
    let name = wide(path.as_os_str().encode_wide());
    // SAFETY: `name` is NUL-terminated and `dacl` points into the live descriptor.
    win32(unsafe {
        SetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            ptr::null_mut(),
            ptr::null_mut(),
            dacl,
            ptr::null(),
        )
    })
}

/// Whether anyone but the current user, the system and the administrators may read or change
/// `path` (an absent access list lets everyone).
///
/// # Errors
/// The file's access list or the current user cannot be read.
pub fn is_exposed(path: &Path) -> io::Result<bool> {
    let user = CurrentUser::open()?;
    let name = wide(path.as_os_str().encode_wide());
    let (mut dacl, mut descriptor): (*mut ACL, PSECURITY_DESCRIPTOR) =
        (ptr::null_mut(), ptr::null_mut());
    // SAFETY: `name` is NUL-terminated; the descriptor (which holds the list) is freed by `Local`.
    win32(unsafe {
        GetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            ptr::null_mut(),
            ptr::null_mut(),
            &mut dacl,
            ptr::null_mut(),
            &mut descriptor,
        )
    })?;
    let _descriptor = Local(descriptor);
    if dacl.is_null() {
        return Ok(true);
    }
    let mut size = ACL_SIZE_INFORMATION {
        AceCount: 0,
        AclBytesInUse: 0,
        AclBytesFree: 0,
    };
    // SAFETY: `dacl` is the live list; `size` is the struct AclSizeInformation asks for.
    check(unsafe {
        GetAclInformation(
            dacl,
            (&raw mut size).cast(),
            size_of::<ACL_SIZE_INFORMATION>() as u32,
            AclSizeInformation,
        )
    })?;
    for index in 0..size.AceCount {
        let mut entry = ptr::null_mut();
        // SAFETY: `index` is below the list's count.
        check(unsafe { GetAce(dacl, index, &mut entry) })?;
        // SAFETY: every entry starts with a header; an allowing entry is an ACCESS_ALLOWED_ACE
        // whose SID starts at `SidStart`.
        let allowed = unsafe { &*entry.cast::<ACCESS_ALLOWED_ACE>() };
        let applies = allowed.Header.AceFlags & INHERIT_ONLY_ACE as u8 == 0;
        if u32::from(allowed.Header.AceType) != ACCESS_ALLOWED_ACE_TYPE
            || !applies
            || allowed.Mask & EXPOSING == 0
        {
            continue;
        }
        let sid: PSID = (&raw const allowed.SidStart).cast_mut().cast();
        // SAFETY: `sid` points at the entry's SID, valid while the descriptor lives.
        let trusted = unsafe {
            EqualSid(sid, user.sid()) != 0
                || IsWellKnownSid(sid, WinLocalSystemSid) != 0
                || IsWellKnownSid(sid, WinBuiltinAdministratorsSid) != 0
        };
        if !trusted {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The process's user, read from its token.
struct CurrentUser {
    /// A TOKEN_USER and the SID it points into, kept as u64s for the struct's alignment.
    buffer: Vec<u64>,
}

impl CurrentUser {
    fn open() -> io::Result<Self> {
        let mut token: HANDLE = ptr::null_mut();
        // SAFETY: the pseudo-handle of this process needs no closing; `token` is closed below.
        check(unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) })?;
        let mut needed = 0u32;
        // SAFETY: asking for the size only, with no buffer; this call fails by design.
        unsafe { GetTokenInformation(token, TokenUser, ptr::null_mut(), 0, &mut needed) };
        let mut buffer = vec![0u64; (needed as usize).div_ceil(8)];
        // SAFETY: `buffer` holds `needed` bytes.
        let read = check(unsafe {
            GetTokenInformation(
                token,
                TokenUser,
                buffer.as_mut_ptr().cast(),
                needed,
                &mut needed,
            )
        });
        // SAFETY: `token` was opened above and is closed once.
        unsafe { CloseHandle(token) };
        read.map(|()| Self { buffer })
    }

    /// The SID as text (`S-1-5-21-…`), as SDDL names it.
    fn sid_text(&self) -> io::Result<String> {
        let mut text = ptr::null_mut();
        // SAFETY: the SID is valid while `self` lives; the string is freed by `Local`.
        check(unsafe { ConvertSidToStringSidW(self.sid(), &mut text) })?;
        let _text = Local(text.cast());
        // SAFETY: ConvertSidToStringSidW wrote a NUL-terminated wide string.
        Ok(String::from_utf16_lossy(unsafe { wide_str(text) }))
    }

    fn sid(&self) -> PSID {
        // SAFETY: the buffer starts with the TOKEN_USER that GetTokenInformation wrote.
        unsafe { (*self.buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid }
    }
}

/// Memory the system allocated for a result, freed with `LocalFree`.
struct Local(*mut core::ffi::c_void);

impl Drop for Local {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a call documented to allocate with LocalAlloc.
            unsafe { LocalFree(self.0) };
        }
    }
}

fn wide(units: impl Iterator<Item = u16>) -> Vec<u16> {
    units.chain(std::iter::once(0)).collect()
}

/// The units of a NUL-terminated wide string, without the NUL.
///
/// # Safety
/// `text` points at a NUL-terminated wide string that outlives the slice.
unsafe fn wide_str<'a>(text: *const u16) -> &'a [u16] {
    let mut length = 0;
    // SAFETY: the caller's promise: the string ends with a NUL.
    while unsafe { *text.add(length) } != 0 {
        length += 1;
    }
    // SAFETY: `length` units before the NUL are the string's.
    unsafe { std::slice::from_raw_parts(text, length) }
}

/// A BOOL-returning call's result, with the thread's last error when it failed.
fn check(succeeded: i32) -> io::Result<()> {
    if succeeded == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A call that returns its error code.
fn win32(status: u32) -> io::Result<()> {
    if status == ERROR_SUCCESS {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(status as i32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restricted_file_is_its_owners_alone_and_a_widened_one_is_noticed() {
        if crate::support::private_file::skipped_without_access_lists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, b"secret").unwrap();
        restrict(&path, false).unwrap();
        assert!(!is_exposed(&path).unwrap());
        // Everyone (S-1-1-0) allowed to read: what an inherited list on a shared drive gives.
        share_with_everyone(&path).unwrap();
        assert!(is_exposed(&path).unwrap());
        restrict(&path, false).unwrap();
        assert!(!is_exposed(&path).unwrap());
    }
}
