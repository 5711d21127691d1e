//! A bounds check of an ELF shared library, run before the dynamic loader sees it.
//!
//! `dlopen` maps a library's segments straight from the file: a truncated library (an
//! interrupted copy, a partial download) maps pages past the end of the file, and the
//! first touch of them kills the whole process with SIGBUS. Reading the ELF and program
//! headers and checking that every loadable segment lies inside the file turns that
//! crash into an error. Hand-written (fifty lines) rather than a parser crate, to keep
//! the ABI crate's dependencies to abi_stable and serde.

use std::io::Read;
use std::path::Path;

const PT_LOAD: u32 = 1;

/// Checks that the ELF file at `path` is complete. Files that are not ELF pass (the
/// dynamic loader refuses them cleanly, and other platforms use other formats).
pub(crate) fn check_complete(path: &Path) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut bytes = Vec::new();
    // Headers sit at the start; 64 KiB holds them for any real library.
    file.by_ref()
        .take(64 * 1024)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Ok(());
    }
    let short = || format!("truncated: the file ends at byte {len}, inside its ELF headers");
    let (is64, little) = match (bytes.get(4), bytes.get(5)) {
        (Some(1), Some(1)) => (false, true),
        (Some(2), Some(1)) => (true, true),
        (Some(1), Some(2)) => (false, false),
        (Some(2), Some(2)) => (true, false),
        _ => return Err("not a valid ELF file (bad class or byte order)".into()),
    };
    let read = |off: usize, size: usize| -> Option<u64> {
        let b = bytes.get(off..off + size)?;
        let mut v: u64 = 0;
        for i in 0..size {
            let byte = if little { b[size - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    let (phoff, shoff, phentsize, phnum, shentsize, shnum) = if is64 {
        (
            read(32, 8),
            read(40, 8),
            read(54, 2),
            read(56, 2),
            read(58, 2),
            read(60, 2),
        )
    } else {
        (
            read(28, 4),
            read(32, 4),
            read(42, 2),
            read(44, 2),
            read(46, 2),
            read(48, 2),
        )
    };
    let (Some(phoff), Some(shoff), Some(phentsize), Some(phnum), Some(shentsize), Some(shnum)) =
        (phoff, shoff, phentsize, phnum, shentsize, shnum)
    else {
        return Err(short());
    };
    if shoff.saturating_add(shentsize.saturating_mul(shnum)) > len {
        return Err(format!(
            "truncated: its section headers end at byte {}, but the file has {len} bytes",
            shoff + shentsize * shnum
        ));
    }
    for i in 0..phnum {
        let at = (phoff + i * phentsize) as usize;
        let (ptype, offset, filesz) = if is64 {
            (read(at, 4), read(at + 8, 8), read(at + 32, 8))
        } else {
            (read(at, 4), read(at + 4, 4), read(at + 16, 4))
        };
        let (Some(ptype), Some(offset), Some(filesz)) = (ptype, offset, filesz) else {
            return Err(short());
        };
        if ptype == u64::from(PT_LOAD) && offset.saturating_add(filesz) > len {
            return Err(format!(
                "truncated: a loadable segment ends at byte {}, but the file has {len} bytes",
                offset + filesz
            ));
        }
    }
    Ok(())
}
