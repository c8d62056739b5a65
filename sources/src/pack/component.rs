//! One plain SQL migration as a component of the `hsm:migration` world, made here with no
//! toolchain: a small core module (its SQL and metadata as data, `up`/`down` passing the SQL to
//! the imported `sql.execute-batch`, a bump allocator for what the host returns), then the
//! component wrapped around it by `wit-component` from the contract embedded in hsm-host.
//! The same input always gives the same bytes, so checksums are stable.

use std::sync::OnceLock;
use wasm_encoder::{
    CodeSection, ConstExpr, DataSection, EntityType, ExportKind, ExportSection, Function,
    FunctionSection, GlobalSection, GlobalType, ImportSection, MemArg, MemorySection, MemoryType,
    Module, TypeSection, ValType,
};
use wit_component::{ComponentEncoder, StringEncoding};

use wit_parser::{Resolve, WorldId};

use super::SqlMigration;

/// A way of packing: the contract the component is built for, and a name that changes with
/// anything in this file that changes the bytes (so components remembered in the cache are
/// made again).
pub(super) struct Packing {
    pub(super) format: &'static str,
    pub(super) contract: &'static str,
    /// The interface whose `execute-batch` runs the SQL.
    sql_import: &'static str,
    /// Whether the component names the files it was packed from (a custom section).
    names_files: bool,
}

/// How SQL migrations are packed: for contract 0.2, which hsm-host runs without an adapter.
/// Built against 0.2.0 as released (`wit/0.2.0`), not the newest 0.2.z: a packed component
/// needs nothing 0.2.z added, and its bytes (the checksum a database recorded) stay the same.
pub(super) const CURRENT: Packing = Packing {
    format: "hsm-host pack 2",
    contract: include_str!("../../../wit/0.2.0/migration.wit"),
    sql_import: "hsm:migration/sql@0.2.0",
    names_files: true,
};

/// How releases that recorded a SQL migration by its component's sha256 packed it (for 0.1.3):
/// kept to recognise what they recorded, never to pack anew.
pub(super) const EARLIER: Packing = Packing {
    format: "hsm-host pack 1",
    contract: include_str!("../../../wit/0.1/migration.wit"),
    sql_import: "hsm:migration/sql@0.1.3",
    names_files: false,
};

/// Fixed places in the module's memory.
const IMPORT_RESULT: u32 = 16; // result<_, sql-error>: 16 bytes
const EXPORT_RESULT: u32 = 32; // result<_, string>: 12 bytes
const METADATA: u32 = 48; // record metadata: 32 bytes, align 8
const STRINGS: u32 = 80; // name, description, up SQL, down SQL, the error of an irreversible down
const PAGE: u32 = 65_536;

const IRREVERSIBLE: &str = "this migration has no down file: it is irreversible";

/// The component's bytes.
pub(super) fn encode(migration: &SqlMigration, packing: &Packing) -> Result<Vec<u8>, String> {
    let mut module = core_module(migration, packing);
    let (resolve, world) = contract(packing).as_ref().map_err(Clone::clone)?;
    wit_component::embed_component_metadata(&mut module, resolve, *world, StringEncoding::UTF8)
        .map_err(|e| format!("cannot describe the component: {e:#}"))?;
    let mut bytes = ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| format!("cannot encode the component: {e:#}"))?;
    if packing.names_files {
        // The files' digests, so that two migrations whose SQL is the same but whose files
        // differ (a byte-order mark) are two components, each found by its own record.
        use wasm_encoder::Section;
        wasm_encoder::CustomSection {
            name: FILES_SECTION.into(),
            data: migration.identity().into_bytes().into(),
        }
        .append_to(&mut bytes);
    }
    Ok(bytes)
}

/// The custom section naming the files a component was packed from (their sha256).
pub(super) const FILES_SECTION: &str = "hsm:sql-files";

/// The contract, parsed once per process (parsing it is most of the work of packing a file).
fn contract(packing: &Packing) -> &'static Result<(Resolve, WorldId), String> {
    static CURRENT_WORLD: OnceLock<Result<(Resolve, WorldId), String>> = OnceLock::new();
    static EARLIER_WORLD: OnceLock<Result<(Resolve, WorldId), String>> = OnceLock::new();
    let parsed = match packing.format == EARLIER.format {
        true => &EARLIER_WORLD,
        false => &CURRENT_WORLD,
    };
    parsed.get_or_init(|| {
        let mut resolve = Resolve::new();
        let package = resolve
            .push_str("migration.wit", packing.contract)
            .map_err(|e| format!("the embedded contract does not parse: {e:#}"))?;
        let world = resolve
            .select_world(&[package], Some("migration"))
            .map_err(|e| format!("the embedded contract has no migration world: {e:#}"))?;
        Ok((resolve, world))
    })
}

/// Where each piece of text lies in memory.
struct Layout {
    name: (u32, u32),
    description: (u32, u32),
    up: (u32, u32),
    down: (u32, u32),
    irreversible: (u32, u32),
}

fn core_module(migration: &SqlMigration, packing: &Packing) -> Vec<u8> {
    let down = migration.down.as_deref().unwrap_or("");
    let mut data = Vec::new();
    let mut place = |text: &str| {
        let at = STRINGS + data.len() as u32;
        data.extend_from_slice(text.as_bytes());
        (at, text.len() as u32)
    };
    let layout = Layout {
        name: place(&migration.name),
        description: place(&migration.description),
        up: place(&migration.up),
        down: place(down),
        irreversible: place(IRREVERSIBLE),
    };
    let heap = (STRINGS + data.len() as u32).next_multiple_of(16);

    let mut types = TypeSection::new();
    types.ty().function([ValType::I32; 3], []); // 0: execute-batch(ptr, len, retptr)
    types.ty().function([ValType::I32; 4], [ValType::I32]); // 1: cabi_realloc
    types.ty().function([], [ValType::I32]); // 2: metadata, up, down
    let mut imports = ImportSection::new();
    imports.import(packing.sql_import, "execute-batch", EntityType::Function(0));
    let mut functions = FunctionSection::new();
    for ty in [1, 2, 2, 2] {
        functions.function(ty);
    }
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: u64::from(heap.div_ceil(PAGE) + 1),
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut globals = GlobalSection::new();
    globals.global(
        GlobalType {
            val_type: ValType::I32,
            mutable: true,
            shared: false,
        },
        &ConstExpr::i32_const(heap as i32),
    );
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    exports.export("cabi_realloc", ExportKind::Func, 1);
    exports.export("metadata", ExportKind::Func, 2);
    exports.export("up", ExportKind::Func, 3);
    exports.export("down", ExportKind::Func, 4);

    let mut code = CodeSection::new();
    code.function(&realloc());
    code.function(&metadata());
    code.function(&run(layout.up));
    code.function(&match migration.down {
        Some(_) => run(layout.down),
        None => fail(layout.irreversible),
    });

    let mut segments = DataSection::new();
    segments.active(
        0,
        &ConstExpr::i32_const(METADATA as i32),
        metadata_record(migration, &layout),
    );
    segments.active(0, &ConstExpr::i32_const(STRINGS as i32), data);

    let mut module = Module::new();
    module
        .section(&types)
        .section(&imports)
        .section(&functions)
        .section(&memories)
        .section(&globals)
        .section(&exports)
        .section(&code)
        .section(&segments);
    module.finish()
}

/// `record metadata { version: u64, name: string, description: string, reversible: bool }` as
/// the canonical ABI lays it out.
fn metadata_record(migration: &SqlMigration, layout: &Layout) -> Vec<u8> {
    let mut record = Vec::with_capacity(32);
    record.extend_from_slice(&migration.version.to_le_bytes());
    for (ptr, len) in [layout.name, layout.description] {
        record.extend_from_slice(&ptr.to_le_bytes());
        record.extend_from_slice(&len.to_le_bytes());
    }
    record.push(u8::from(migration.down.is_some()));
    record.resize(32, 0);
    record
}

fn memarg(offset: u64, align: u32) -> MemArg {
    MemArg {
        offset,
        align,
        memory_index: 0,
    }
}

/// `cabi_realloc(old, old_size, align, size)`: a bump allocator that never frees (one call
/// of one migration is short); reallocation is never asked of it by the host and traps.
fn realloc() -> Function {
    let mut f = Function::new([(1, ValType::I32)]);
    let (old, align, size, ptr) = (0, 2, 3, 4);
    let mut sink = f.instructions();
    // A reallocation (old != 0) is not supported.
    sink.local_get(old)
        .if_(wasm_encoder::BlockType::Empty)
        .unreachable()
        .end();
    // ptr = (heap + align - 1) & -align
    sink.global_get(0)
        .local_get(align)
        .i32_add()
        .i32_const(1)
        .i32_sub()
        .i32_const(0)
        .local_get(align)
        .i32_sub()
        .i32_and()
        .local_tee(ptr)
        .local_get(size)
        .i32_add()
        .global_set(0);
    // Grow the memory when the new end is past it.
    sink.global_get(0)
        .memory_size(0)
        .i32_const(PAGE as i32)
        .i32_mul()
        .i32_gt_u()
        .if_(wasm_encoder::BlockType::Empty)
        .global_get(0)
        .memory_size(0)
        .i32_const(PAGE as i32)
        .i32_mul()
        .i32_sub()
        .i32_const(PAGE as i32 - 1)
        .i32_add()
        .i32_const(PAGE as i32)
        .i32_div_u()
        .memory_grow(0)
        .i32_const(-1)
        .i32_eq()
        .if_(wasm_encoder::BlockType::Empty)
        .unreachable()
        .end()
        .end();
    sink.local_get(ptr).end();
    f
}

fn metadata() -> Function {
    let mut f = Function::new([]);
    f.instructions().i32_const(METADATA as i32).end();
    f
}

/// `up`/`down`: runs `sql` through `execute-batch`; on failure returns SQLite's message (the
/// host has added the statement and its line).
fn run((sql, len): (u32, u32)) -> Function {
    let mut f = Function::new([]);
    let mut sink = f.instructions();
    if len == 0 {
        // An empty or absent script: nothing to run (an empty down is a reversible no-op).
        sink.i32_const(EXPORT_RESULT as i32)
            .i32_const(0)
            .i32_store8(memarg(0, 0))
            .i32_const(EXPORT_RESULT as i32)
            .end();
        return f;
    }
    sink.i32_const(sql as i32)
        .i32_const(len as i32)
        .i32_const(IMPORT_RESULT as i32)
        .call(0);
    // result<_, string>'s case is result<_, sql-error>'s.
    sink.i32_const(EXPORT_RESULT as i32)
        .i32_const(IMPORT_RESULT as i32)
        .i32_load8_u(memarg(0, 0))
        .i32_store8(memarg(0, 0));
    // On error, the string is the sql-error's message (offsets 8 and 12).
    sink.i32_const(EXPORT_RESULT as i32)
        .i32_const(IMPORT_RESULT as i32)
        .i32_load(memarg(8, 2))
        .i32_store(memarg(4, 2))
        .i32_const(EXPORT_RESULT as i32)
        .i32_const(IMPORT_RESULT as i32)
        .i32_load(memarg(12, 2))
        .i32_store(memarg(8, 2));
    sink.i32_const(EXPORT_RESULT as i32).end();
    f
}

/// A step that always fails with `message` (the down of a migration without a down file).
fn fail((message, len): (u32, u32)) -> Function {
    let mut f = Function::new([]);
    f.instructions()
        .i32_const(EXPORT_RESULT as i32)
        .i32_const(1)
        .i32_store8(memarg(0, 0))
        .i32_const(EXPORT_RESULT as i32)
        .i32_const(message as i32)
        .i32_store(memarg(4, 2))
        .i32_const(EXPORT_RESULT as i32)
        .i32_const(len as i32)
        .i32_store(memarg(8, 2))
        .i32_const(EXPORT_RESULT as i32)
        .end();
    f
}
