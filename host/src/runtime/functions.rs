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
use super::state::GuestState;
use crate::contract::Value;
use crate::sql::FunctionCaller;
use crate::text::{self, Budget};

/// The export a component offers its functions under. Components built against 0.1.1 or
/// 0.1.2 are found by this name too (semver-compatible lookup); they lack `names` and
/// `call-unary`, and are called by name.
const FUNCTIONS_EXPORT: &str = "hsm:migration/functions@0.1.3";

type CallFunc = TypedFunc<(String, Vec<Value>), (Result<Value, String>,)>;
type NamesFunc = TypedFunc<(), (Vec<String>,)>;
type CallUnaryFunc = TypedFunc<(u32, Value), (Result<Value, String>,)>;

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
}

/// The running function instance, shared by every function one guest call registered.
#[derive(Clone)]
pub(crate) struct GuestFunctions {
    instance: Arc<Mutex<FunctionInstance>>,
    /// What `names` returned (empty before 0.1.3): `call-unary`'s numbering.
    names: Arc<[String]>,
}

struct FunctionInstance {
    store: Store<GuestState>,
    call: CallFunc,
    /// `None` for components built before 0.1.3.
    call_unary: Option<CallUnaryFunc>,
    /// Set once the instance trapped: it cannot be entered again.
    dead: Option<String>,
}

impl FunctionFactory {
    /// Instantiates the component again and finds its `functions` export.
    pub(crate) fn start(&self) -> Result<GuestFunctions, String> {
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
                Some(memory) => format!("cannot start the function instance: {memory}"),
                None => format!("cannot start the function instance: {e:#}"),
            }
        })?;
        let missing = || {
            format!(
                "the component does not export {FUNCTIONS_EXPORT}: build it for the \
                 migration-with-functions world (the Rust SDK does)"
            )
        };
        let interface = instance
            .get_export_index(&mut store, None, FUNCTIONS_EXPORT)
            .ok_or_else(missing)?;
        let call: CallFunc =
            typed_export(&instance, &mut store, &interface, "call")?.ok_or_else(missing)?;
        let names: Option<NamesFunc> = typed_export(&instance, &mut store, &interface, "names")?;
        let call_unary: Option<CallUnaryFunc> =
            typed_export(&instance, &mut store, &interface, "call-unary")?;
        let (names, call_unary) = match (names, call_unary) {
            (Some(names), Some(call_unary)) => {
                let (names,) = names
                    .call(&mut store, ())
                    .map_err(|e| format!("{FUNCTIONS_EXPORT}#names trapped: {e:#}"))?;
                (names, Some(call_unary))
            }
            _ => (Vec::new(), None),
        };
        Ok(GuestFunctions {
            instance: Arc::new(Mutex::new(FunctionInstance {
                store,
                call,
                call_unary,
                dead: None,
            })),
            names: names.into(),
        })
    }
}

/// The function `name` of the functions export, if the component has it, with the type we
/// expect.
fn typed_export<Params, Results>(
    instance: &Instance,
    store: &mut Store<GuestState>,
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
        .map_err(|e| format!("{FUNCTIONS_EXPORT}#{name} has the wrong type: {e:#}"))
}

impl GuestFunctions {
    /// Why the instance stopped (a trap, the memory or time limit), if it did: the migration's
    /// real cause even when the guest reports only the SQL error it got.
    pub(crate) fn failure(&self) -> Option<String> {
        self.instance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .dead
            .clone()
    }

    /// The caller SQLite uses for the guest's function `name`: one-argument calls go through
    /// `call-unary` when the component has it, everything else through `call` by name.
    pub(crate) fn caller(&self, name: &str) -> FunctionCaller {
        let instance = Arc::clone(&self.instance);
        let index = self.names.iter().position(|n| n == name);
        let name = name.to_owned();
        Arc::new(move |mut args: Vec<Value>| {
            let mut guard = instance.lock().unwrap_or_else(|p| p.into_inner());
            let instance = &mut *guard;
            if let Some(reason) = &instance.dead {
                return Err(reason.clone());
            }
            let outcome = match (&instance.call_unary, index, args.len()) {
                (Some(call_unary), Some(index), 1) => {
                    let arg = args.pop().expect("one argument");
                    call_unary.call(&mut instance.store, (index as u32, arg))
                }
                _ => instance
                    .call
                    .call(&mut instance.store, (name.clone(), args)),
            };
            match outcome {
                Ok((result,)) => {
                    result.map_err(|message| text::neutralize(&message, text::MAX_MESSAGE))
                }
                Err(trap) => {
                    let reason = match instance.store.data_mut().limiter.exceeded.take() {
                        Some(memory) => format!("function {name}: {memory}"),
                        None if Instant::now() >= instance.store.data().deadline()
                            || trap.downcast_ref::<wasmtime::Trap>()
                                == Some(&wasmtime::Trap::Interrupt) =>
                        {
                            format!("function {name}: {OUT_OF_TIME}")
                        }
                        None => format!("function {name} trapped: {trap:#}"),
                    };
                    instance.dead = Some(reason.clone());
                    Err(reason)
                }
            }
        })
    }
}
