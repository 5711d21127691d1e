//! abi_stable records in each type's layout the package that defines it
//! (`CARGO_PKG_NAME`), and refuses a type of another package as a different type. The
//! frozen copy is the same ABI as `ionport-plugin-abi` 1.0, so its types must carry that
//! package's name; the workspace needs the copy under a name of its own, hence this
//! override of the name the compiler sees (the version stays the workspace's, as then).

fn main() {
    println!("cargo:rustc-env=CARGO_PKG_NAME=ionport-plugin-abi");
    println!("cargo:rerun-if-changed=build.rs");
}
