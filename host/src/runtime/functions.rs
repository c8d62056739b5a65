//! Guest-defined scalar SQL functions: a second instance of the migration's component, with no
//! SQL access, that SQLite calls once per row through the component's `functions` export.
//! (The instance running `up` cannot be re-entered while it waits for its own SQL.)

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{InstancePre, TypedFunc};
use wasmtime::{Engine, Store};

use super::bindings::Value;
use super::limits::{self, Limits};
use super::state::GuestState;
use crate::sql::FunctionCaller;

/// The export a component offers its functions under.
const FUNCTIONS_EXPORT: &str = "hsm:migration/functions@0.1.2";

type CallFunc = TypedFunc<(String, Vec<Value>), (Result<Value, String>,)>;

/// What a guest call needs to start the function instance when the guest first registers one.
#[derive(Clone)]
pub(crate) struct FunctionFactory {
    pub(crate) engine: Engine,
    pub(crate) pre: InstancePre<GuestState>,
    pub(crate) limits: Limits,
    pub(crate) deadline: Instant,
    pub(crate) label: String,
}

struct FunctionInstance {
    store: Store<GuestState>,
    call: CallFunc,
    /// Set once the instance trapped: it cannot be entered again.
    dead: Option<String>,
}

impl FunctionFactory {
    /// Instantiates the component again and finds its `functions.call` export.
    pub(crate) fn start(&self) -> Result<FunctionCaller, String> {
        let state = GuestState::new(
            format!("{} (functions)", self.label),
            None,
            self.deadline,
            self.limits.max_memory,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        store.set_epoch_deadline(limits::ticks(remaining));
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| format!("cannot start the function instance: {e:#}"))?;
        let missing = || {
            format!(
                "the component does not export {FUNCTIONS_EXPORT}: build it for the \
                 migration-with-functions world (the Rust SDK does)"
            )
        };
        let interface = instance
            .get_export_index(&mut store, None, FUNCTIONS_EXPORT)
            .ok_or_else(missing)?;
        let func = instance
            .get_export_index(&mut store, Some(&interface), "call")
            .ok_or_else(missing)?;
        let call: CallFunc = instance
            .get_typed_func(&mut store, func)
            .map_err(|e| format!("{FUNCTIONS_EXPORT}#call has the wrong type: {e:#}"))?;
        let shared = Arc::new(Mutex::new(FunctionInstance {
            store,
            call,
            dead: None,
        }));
        Ok(Arc::new(move |name: &str, args: Vec<Value>| {
            let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
            let instance = &mut *guard;
            if let Some(reason) = &instance.dead {
                return Err(reason.clone());
            }
            match instance
                .call
                .call(&mut instance.store, (name.to_owned(), args))
            {
                Ok((result,)) => result,
                Err(trap) => {
                    let reason = match instance.store.data_mut().limiter.exceeded.take() {
                        Some(memory) => format!("function {name}: {memory}"),
                        None if Instant::now() >= instance.store.data().deadline() => {
                            format!("function {name}: the migration ran out of time")
                        }
                        None => format!("function {name} trapped: {trap:#}"),
                    };
                    instance.dead = Some(reason.clone());
                    Err(reason)
                }
            }
        }))
    }
}
