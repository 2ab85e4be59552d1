//! What a `.wasm` file is, read from its 8-byte header before wasmtime sees it.
//!
//! wasmtime's parser errors for the two common mistakes are parser internals
//! ("attempted to parse a wasm module with a component parser", or a
//! multi-line dump for a file that is not WebAssembly at all). Both are told
//! apart from the header alone, so the load error can say what the file is
//! and what to do: a core module is a guest built for the wrong target
//! (`wasm32-unknown-unknown`, `wasm32-wasip1`) or not wrapped into a
//! component; anything else is not a plugin (a half-copied file, a text file
//! renamed `.wasm`).

/// The binary format's magic number.
const MAGIC: &[u8; 4] = b"\0asm";
/// Version field of a core module (`1`) and of a component (`0x0d`, layer 1).
const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    /// A component (or a future layer of one): wasmtime decides the rest.
    Component,
    /// A core module: not loadable as a plugin.
    CoreModule,
    /// No WebAssembly header at all.
    NotWasm,
}

pub fn kind(bytes: &[u8]) -> WasmKind {
    match bytes.get(..8) {
        Some(header) if &header[..4] == MAGIC && header[4..] == CORE_VERSION => WasmKind::CoreModule,
        Some(header) if &header[..4] == MAGIC => WasmKind::Component,
        _ => WasmKind::NotWasm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tells_the_kinds_apart() {
        assert_eq!(kind(b"\0asm\x01\0\0\0rest"), WasmKind::CoreModule);
        assert_eq!(kind(b"\0asm\x0d\0\x01\0rest"), WasmKind::Component);
        assert_eq!(kind(b"hello world"), WasmKind::NotWasm);
        assert_eq!(kind(b"\0asm"), WasmKind::NotWasm);
    }
}
