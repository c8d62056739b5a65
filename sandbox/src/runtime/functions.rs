//! Guest-defined scalar SQL functions: a second instance of the migration's component, with no
//! SQL access, that SQLite calls once per row through the component's `functions` export.
//! (The instance running `up` cannot be re-entered while it waits for its own SQL.)

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, Instance, InstancePre, Lift, Lower, TypedFunc,
};
use wasmtime::{Engine, Store};

use super::limits::{self, MemoryBudget};
use super::state::{CallFunctions, FunctionFailure, GuestState, StartFunctions};
use crate::contract::Value;
use crate::sql::FunctionCaller;
use crate::text::{self, Budget};

/// The export a component offers its functions under (contract 0.2; 0.1's is found by the
/// adapter, `super::host::v0_1`). Export lookups are semver-compatible: a component built
/// against 0.2.1 exports `functions@0.2.1`, found by this name.
const FUNCTIONS_EXPORT: &str = "hsm:migration/functions@0.2.0";

type NamesFunc = TypedFunc<(), (Vec<String>,)>;
type CallFunc = TypedFunc<(u32, Vec<Value>), (Result<Value, String>,)>;

/// A component's `functions` export, whichever contract version it was built for.
pub(crate) trait FunctionsExport: Send {
    /// The names it lists (contract 0.1's export lists none).
    fn names(&self) -> Vec<String>;

    /// The function `call` runs for `name`; an error when the component has none by that name.
    fn lookup(&self, name: &str) -> Result<FunctionId, String>;

    /// Computes one row's result: the guest's value or message, or its trap.
    fn call(
        &self,
        store: &mut Store<GuestState>,
        function: &FunctionId,
        args: Vec<Value>,
    ) -> wasmtime::Result<Result<Value, String>>;
}

/// One function of a `functions` export: its position in `names` (when the component lists
/// them) and its name.
#[derive(Debug, Clone)]
pub(crate) struct FunctionId {
    pub(crate) index: Option<u32>,
    pub(crate) name: String,
}

/// Contract 0.2's export: `names`, then `call` by position.
struct Functions {
    names: Vec<String>,
    call: CallFunc,
}

impl FunctionsExport for Functions {
    fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn lookup(&self, name: &str) -> Result<FunctionId, String> {
        match self.names.iter().position(|n| n == name) {
            Some(index) => Ok(FunctionId {
                index: Some(index as u32),
                name: name.to_owned(),
            }),
            None => Err(format!(
                "this migration declares no SQL function `{}` (its functions export has: {})",
                text::neutralize(name, 64),
                match self.names.is_empty() {
                    true => "none".to_owned(),
                    false => text::neutralize(&self.names.join(", "), 256),
                }
            )),
        }
    }

    fn call(
        &self,
        store: &mut Store<GuestState>,
        function: &FunctionId,
        args: Vec<Value>,
    ) -> wasmtime::Result<Result<Value, String>> {
        let index = function.index.unwrap_or(u32::MAX);
        self.call.call(store, (index, args)).map(|(result,)| result)
    }
}

/// How a function instance stopped by the deadline says so (the migration reports the limit).
pub(crate) const OUT_OF_TIME: &str = "it exceeded the migration's time limit";

/// What a guest call needs to start the function instance when the guest first registers one.
#[derive(Clone)]
pub(crate) struct FunctionFactory {
    pub(crate) engine: Engine,
    pub(crate) pre: InstancePre<GuestState>,
    pub(crate) deadline: Instant,
    pub(crate) label: String,
    /// The migration's budgets, shared with the instance running `up`/`down`.
    pub(crate) memory: Arc<MemoryBudget>,
    pub(crate) log_budget: Arc<Budget>,
    /// Finds the instance's `functions` export (contract 0.2's, or an adapter's for 0.1).
    pub(crate) find_export: ExportFinder,
}

/// Finds the `functions` export of an instance, if it has one.
pub(crate) type ExportFinder =
    fn(&Instance, &mut Store<GuestState>) -> Result<Option<Box<dyn FunctionsExport>>, String>;

/// The running function instance, shared by every function one guest call registered.
#[derive(Clone)]
pub(crate) struct GuestFunctions {
    instance: Arc<Mutex<FunctionInstance>>,
}

struct FunctionInstance {
    store: Store<GuestState>,
    export: Box<dyn FunctionsExport>,
    /// Set once the instance trapped: it cannot be entered again.
    dead: Option<FunctionFailure>,
}

impl FunctionFactory {
    /// Instantiates the component again and finds its `functions` export.
    pub(crate) fn start(&self) -> Result<GuestFunctions, FunctionFailure> {
        let state = GuestState::new(
            format!("{} (functions)", self.label),
            None,
            self.deadline,
            Arc::clone(&self.memory),
            Arc::clone(&self.log_budget),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        store.set_epoch_deadline(limits::ticks(remaining));
        let instance = self.pre.instantiate(&mut store).map_err(|e| {
            match store.data_mut().limiter.exceeded.take() {
                Some(memory) => FunctionFailure::OutOfMemory(format!(
                    "cannot start the function instance: {memory}"
                )),
                None => {
                    FunctionFailure::Trapped(format!("cannot start the function instance: {e:#}"))
                }
            }
        })?;
        let export = (self.find_export)(&instance, &mut store)
            .map_err(FunctionFailure::Trapped)?
            .ok_or_else(|| {
                FunctionFailure::Trapped(format!(
                    "the component does not export {FUNCTIONS_EXPORT}: build it for the \
                     migration-with-functions world (the Rust SDK does)"
                ))
            })?;
        Ok(GuestFunctions {
            instance: Arc::new(Mutex::new(FunctionInstance {
                store,
                export,
                dead: None,
            })),
        })
    }
}

/// Contract 0.2's `functions` export of `instance`, if it has one; its names read once.
pub(crate) fn find_export(
    instance: &Instance,
    store: &mut Store<GuestState>,
) -> Result<Option<Box<dyn FunctionsExport>>, String> {
    let Some(interface) = instance.get_export_index(&mut *store, None, FUNCTIONS_EXPORT) else {
        return Ok(None);
    };
    let missing = |name: &str| format!("{FUNCTIONS_EXPORT} has no function {name}");
    let names: NamesFunc = typed_export(instance, store, FUNCTIONS_EXPORT, &interface, "names")?
        .ok_or_else(|| missing("names"))?;
    let call: CallFunc = typed_export(instance, store, FUNCTIONS_EXPORT, &interface, "call")?
        .ok_or_else(|| missing("call"))?;
    let (names,) = names
        .call(&mut *store, ())
        .map_err(|e| format!("{FUNCTIONS_EXPORT}#names trapped: {e:#}"))?;
    Ok(Some(Box::new(Functions { names, call })))
}

/// The function `name` of the export `export` (found at `interface`), if the component has
/// it, with the type we expect.
pub(crate) fn typed_export<Params, Results>(
    instance: &Instance,
    store: &mut Store<GuestState>,
    export: &str,
    interface: &ComponentExportIndex,
    name: &str,
) -> Result<Option<TypedFunc<Params, Results>>, String>
where
    Params: ComponentNamedList + Lower,
    Results: ComponentNamedList + Lift,
{
    let Some(func) = instance.get_export_index(&mut *store, Some(interface), name) else {
        return Ok(None);
    };
    instance
        .get_typed_func(&mut *store, func)
        .map(Some)
        .map_err(|e| format!("{export}#{name} has the wrong type: {e:#}"))
}

impl StartFunctions for FunctionFactory {
    fn start(&self) -> Result<Box<dyn CallFunctions>, FunctionFailure> {
        FunctionFactory::start(self).map(|functions| Box::new(functions) as _)
    }
}

impl CallFunctions for GuestFunctions {
    fn caller(&self, name: &str) -> Result<FunctionCaller, String> {
        GuestFunctions::caller(self, name)
    }

    fn failure(&self) -> Option<FunctionFailure> {
        GuestFunctions::failure(self)
    }
}

impl GuestFunctions {
    /// The names its `functions` export lists.
    pub(crate) fn names(&self) -> Vec<String> {
        lock(&self.instance).export.names()
    }

    /// Why the instance stopped (a trap, the memory or time limit), if it did: the migration's
    /// real cause even when the guest reports only the SQL error it got.
    pub(crate) fn failure(&self) -> Option<FunctionFailure> {
        lock(&self.instance).dead.clone()
    }

    /// The caller SQLite uses for the guest's function `name`; an error when the component
    /// does not implement it.
    pub(crate) fn caller(&self, name: &str) -> Result<FunctionCaller, String> {
        let instance = Arc::clone(&self.instance);
        let function = lock(&self.instance).export.lookup(name)?;
        let name = name.to_owned();
        Ok(Arc::new(move |args: Vec<Value>| {
            let mut guard = lock(&instance);
            let instance = &mut *guard;
            if let Some(failure) = &instance.dead {
                return Err(failure.message().to_owned());
            }
            let outcome = instance.export.call(&mut instance.store, &function, args);
            match outcome {
                Ok(result) => {
                    result.map_err(|message| text::neutralize(&message, text::MAX_MESSAGE))
                }
                Err(trap) => {
                    let failure = match instance.store.data_mut().limiter.exceeded.take() {
                        Some(memory) => {
                            FunctionFailure::OutOfMemory(format!("function {name}: {memory}"))
                        }
                        None if Instant::now() >= instance.store.data().deadline()
                            || trap.downcast_ref::<wasmtime::Trap>()
                                == Some(&wasmtime::Trap::Interrupt) =>
                        {
                            FunctionFailure::OutOfTime(format!("function {name}: {OUT_OF_TIME}"))
                        }
                        None => {
                            FunctionFailure::Trapped(format!("function {name} trapped: {trap:#}"))
                        }
                    };
                    let message = failure.message().to_owned();
                    instance.dead = Some(failure);
                    Err(message)
                }
            }
        }))
    }
}

fn lock(instance: &Mutex<FunctionInstance>) -> std::sync::MutexGuard<'_, FunctionInstance> {
    instance.lock().unwrap_or_else(|p| p.into_inner())
}
