//! State kernels. The interpreter carries the state values (see
//! [`run_stateful`](crate::interp::run_stateful)): it binds a state's current value to the
//! state's name, and stores the `data` of each `write_state` once the kernel has checked it.

use crate::interp::{KernelArgs, Value};

/// `read_state`: a copy of the state's current value.
pub fn read_state(a: &KernelArgs) -> Result<Vec<Value>, String> {
    Ok(vec![a.get("input")?.clone()])
}

/// `write_state`: checks that `data` has the state's shape; the interpreter stores it.
pub fn write_state(a: &KernelArgs) -> Result<Vec<Value>, String> {
    let (state, data) = (a.get("input")?, a.get("data")?);
    if state.shape() != data.shape() {
        return Err(format!(
            "data of shape {:?} written to a state of shape {:?}",
            data.shape(),
            state.shape()
        ));
    }
    Ok(Vec::new())
}
