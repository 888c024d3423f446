//! A reader for the pickles `torch.save` writes (`data.pkl`): it parses the opcode stream into
//! plain values and never executes anything (docs/pt2.md, "Pickled weights").
//!
//! Only the opcodes torch uses are read (protocol 2, plus the few protocol 4 adds when a
//! caller asks for it), and a GLOBAL is accepted only from a short allow-list: the ordered
//! dict, the tensor and parameter rebuild functions, `torch.Size` and the typed storage
//! classes. Calls (`REDUCE`, `NEWOBJ`) are evaluated here, in Rust, for those globals only;
//! any other global is an error that names it. Persistent ids become [`StorageRef`]s that the
//! caller resolves to zip members.
//!
//! Compound values live in one object table and are referred to by index, so shared and
//! later-mutated objects behave as in Python and dropping a deeply nested value never
//! recurses. Every length is checked against the bytes left before anything is allocated,
//! and the memo, the mark depth and the number of values created are bounded, so a hostile
//! pickle costs at most a small multiple of its own size.

use super::storage::{TorchDType, View};
use std::collections::HashMap;
use std::rc::Rc;

/// Most memo entries a pickle may define.
const MAX_MEMO: usize = 1 << 20;
/// Deepest MARK nesting accepted (torch's pickles nest three deep).
const MAX_MARK_DEPTH: usize = 64;
/// Most values (scalars, strings, objects) a pickle may create: about 20 per tensor.
const MAX_VALUES: usize = 1 << 23;
/// Longest GLOBAL module or name line.
const MAX_GLOBAL_LINE: usize = 256;

/// A pickled value. Tuples, lists, dicts, storages and tensors are [`Value::Object`]s, indices
/// into the [`Pickle`]'s object table.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An int that fits in 64 bits.
    Int(i64),
    /// A float.
    Float(f64),
    /// A str.
    Str(Rc<str>),
    /// A bytes object.
    Bytes(Rc<[u8]>),
    /// An allow-listed global (a class or function, not yet called).
    Global(Global),
    /// A compound object: its index in the object table.
    Object(usize),
}

/// The globals a torch pickle may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter`.
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state`.
    RebuildParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2`: a tensor with Python attributes (torch 2.7
    /// saves non-persistent buffers so); read only when the type is plain `torch.Tensor`.
    RebuildFromTypeV2,
    /// `torch.Tensor`, the class (an argument of `_rebuild_from_type_v2`).
    Tensor,
    /// `torch.Size`.
    Size,
    /// A typed storage class such as `torch.FloatStorage`.
    Storage(TorchDType),
}

impl Global {
    /// The Python name, for messages.
    fn python_name(self) -> &'static str {
        match self {
            Global::OrderedDict => "collections.OrderedDict",
            Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2",
            Global::RebuildParameter => "torch._utils._rebuild_parameter",
            Global::RebuildParameterWithState => "torch._utils._rebuild_parameter_with_state",
            Global::RebuildFromTypeV2 => "torch._tensor._rebuild_from_type_v2",
            Global::Tensor => "torch.Tensor",
            Global::Size => "torch.Size",
            Global::Storage(_) => "a torch storage class",
        }
    }
}

/// A compound value.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list.
    List(Vec<Value>),
    /// A dict or `OrderedDict`, entries in insertion order (a repeated key is kept twice).
    Dict(Vec<(Value, Value)>),
    /// A set.
    Set(Vec<Value>),
    /// A storage named by a persistent id.
    Storage(StorageRef),
    /// A tensor (or parameter) rebuilt on a storage.
    Tensor(TensorRef),
}

impl Object {
    /// What the object is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Tuple(_) => "tuple",
            Object::List(_) => "list",
            Object::Dict(_) => "dict",
            Object::Set(_) => "set",
            Object::Storage(_) => "storage",
            Object::Tensor(_) => "tensor",
        }
    }
}

/// A storage persistent id: `("storage", <dtype>Storage, key, location, numel)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRef {
    /// Element type.
    pub dtype: TorchDType,
    /// Record key: the storage's bytes are zip member `data/<key>`.
    pub key: String,
    /// Number of elements the record holds.
    pub numel: i64,
}

/// A `_rebuild_tensor_v2` call: a view of a storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage viewed.
    pub storage: StorageRef,
    /// Sizes, strides and offset, in elements of the storage's type.
    pub view: View,
}

/// A parsed pickle: the object table and the value `STOP` returned.
#[derive(Debug)]
pub struct Pickle {
    objects: Vec<Object>,
    root: Value,
}

impl Pickle {
    /// Parses `bytes`. Errors are one line and give the byte offset of the opcode at fault.
    pub fn parse(bytes: &[u8]) -> Result<Pickle, String> {
        Machine::new(bytes).run()
    }

    /// The value the pickle returns.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// The object `value` refers to, if it is one.
    pub fn object(&self, value: &Value) -> Option<&Object> {
        match value {
            Value::Object(id) => self.objects.get(*id),
            _ => None,
        }
    }

    /// What `value` is, for messages.
    pub fn kind(&self, value: &Value) -> &'static str {
        kind(&self.objects, value)
    }
}

/// What `value` is (`"tensor"`, `"str"`, …), for messages.
fn kind(objects: &[Object], value: &Value) -> &'static str {
    match value {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::Global(_) => "global",
        Value::Object(id) => objects.get(*id).map_or("object", Object::kind),
    }
}

/// The allow-listed global `module.name`, or an error naming it.
fn resolve_global(module: &str, name: &str) -> Result<Global, String> {
    Ok(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch", "Tensor") => Global::Tensor,
        ("torch", "Size") => Global::Size,
        ("torch", class) => match TorchDType::from_storage_class(class) {
            Some(dtype) => Global::Storage(dtype),
            None if class.ends_with("Storage") => {
                return Err(format!(
                    "storage type 'torch.{}' is not supported",
                    printable(class)
                ))
            }
            None => return Err(not_allowed(module, name)),
        },
        _ => return Err(not_allowed(module, name)),
    })
}

fn not_allowed(module: &str, name: &str) -> String {
    format!(
        "pickle global '{}.{}' is not allowed (mlpack reads tensors only; nothing in the file is run)",
        printable(module),
        printable(name)
    )
}

/// Text from the file made safe for a one-line message: escaped and cut at 100 characters.
fn printable(text: &str) -> String {
    let escaped: String = text.escape_debug().collect();
    match escaped.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &escaped[..cut]),
        None => escaped,
    }
}

/// The names of pickle opcodes mlpack does not read, for messages.
fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        b'I' => "INT",
        b'L' => "LONG",
        b'F' => "FLOAT",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'V' => "UNICODE",
        b'P' => "PERSID",
        b'g' => "GET",
        b'p' => "PUT",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'l' => "LIST",
        b'd' => "DICT",
        b'i' => "INST",
        b'o' => "OBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x8b => "LONG4",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

/// The pickle machine: the input, the stack with its marks, the memo and the object table.
struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    objects: Vec<Object>,
    created: usize,
}

impl<'a> Machine<'a> {
    fn new(bytes: &'a [u8]) -> Machine<'a> {
        Machine {
            bytes,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            objects: Vec::new(),
            created: 0,
        }
    }

    fn run(mut self) -> Result<Pickle, String> {
        loop {
            let at = self.pos;
            let Some(&op) = self.bytes.get(at) else {
                return Err(format!("the pickle ends at byte {at} without STOP"));
            };
            self.pos += 1;
            match self.step(op) {
                Ok(true) => {}
                Ok(false) => {
                    let root = self.pop().map_err(|m| format!("{m} (pickle byte {at})"))?;
                    return Ok(Pickle {
                        objects: self.objects,
                        root,
                    });
                }
                Err(m) => return Err(format!("{m} (pickle byte {at})")),
            }
        }
    }

    /// Executes one opcode; false after STOP.
    fn step(&mut self, op: u8) -> Result<bool, String> {
        match op {
            0x80 => {
                let proto = self.u8()?;
                if proto > 5 {
                    return Err(format!("pickle protocol {proto} is not supported"));
                }
            }
            0x95 => {
                // FRAME: a length hint only; the frame's bytes follow as ordinary opcodes.
                let len = u64::from_le_bytes(self.array()?);
                if len > (self.bytes.len() - self.pos) as u64 {
                    return Err(format!("a frame of {len} bytes runs past the end"));
                }
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                let global = resolve_global(&module, &name)?;
                self.push(Value::Global(global))?;
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return Err("STACK_GLOBAL needs two strings".into());
                };
                let global = resolve_global(&module, &name)?;
                self.push(Value::Global(global))?;
            }
            b'Q' => {
                let pid = self.pop()?;
                let storage = self.storage_ref(&pid)?;
                self.push_object(Object::Storage(storage))?;
            }
            b'J' => {
                let v = i32::from_le_bytes(self.array()?);
                self.push(Value::Int(v as i64))?;
            }
            b'K' => {
                let v = self.u8()?;
                self.push(Value::Int(v as i64))?;
            }
            b'M' => {
                let v = u16::from_le_bytes(self.array()?);
                self.push(Value::Int(v as i64))?;
            }
            0x8a => {
                let n = self.u8()? as usize;
                let digits = self.take(n)?;
                if n > 8 {
                    return Err(format!("an integer of {n} bytes is too large"));
                }
                let mut le = [0u8; 8];
                le[..n].copy_from_slice(digits);
                let v = i64::from_le_bytes(le);
                // Sign-extend from the top byte written.
                let shift = 64 - 8 * n as u32;
                let v = if n == 0 { 0 } else { (v << shift) >> shift };
                self.push(Value::Int(v))?;
            }
            b'G' => {
                let v = f64::from_be_bytes(self.array()?);
                self.push(Value::Float(v))?;
            }
            b'X' => {
                let n = u32::from_le_bytes(self.array()?) as usize;
                let s = self.text(n)?;
                self.push(Value::Str(s))?;
            }
            0x8c | b'U' => {
                let n = self.u8()? as usize;
                let s = self.text(n)?;
                self.push(Value::Str(s))?;
            }
            b'B' => {
                let n = u32::from_le_bytes(self.array()?) as usize;
                let b = self.take(n)?;
                self.push(Value::Bytes(Rc::from(b)))?;
            }
            b'C' => {
                let n = self.u8()? as usize;
                let b = self.take(n)?;
                self.push(Value::Bytes(Rc::from(b)))?;
            }
            b'(' => {
                if self.marks.len() >= MAX_MARK_DEPTH {
                    return Err(format!("MARKs nest deeper than {MAX_MARK_DEPTH}"));
                }
                self.marks.push(self.stack.len());
            }
            b't' => {
                let items = self.pop_mark()?;
                self.push_object(Object::Tuple(items))?;
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let items = self.pop_n(n)?;
                self.push_object(Object::Tuple(items))?;
            }
            b')' => self.push_object(Object::Tuple(Vec::new()))?,
            b']' => self.push_object(Object::List(Vec::new()))?,
            b'}' => self.push_object(Object::Dict(Vec::new()))?,
            0x8f => self.push_object(Object::Set(Vec::new()))?,
            b'N' => self.push(Value::None)?,
            0x88 => self.push(Value::Bool(true))?,
            0x89 => self.push(Value::Bool(false))?,
            b'h' | b'j' => {
                let index = if op == b'h' {
                    self.u8()? as u32
                } else {
                    u32::from_le_bytes(self.array()?)
                };
                let value =
                    self.memo.get(&index).cloned().ok_or_else(|| {
                        format!("memo entry {index} is read before it is written")
                    })?;
                self.push(value)?;
            }
            b'q' | b'r' => {
                let index = if op == b'q' {
                    self.u8()? as u32
                } else {
                    u32::from_le_bytes(self.array()?)
                };
                self.memoize(index)?;
            }
            0x94 => {
                let index = u32::try_from(self.memo.len()).map_err(|_| "memo overflow")?;
                self.memoize(index)?;
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let result = self.call(&callable, &args)?;
                self.push(result)?;
            }
            0x81 => {
                let args = self.pop()?;
                let class = self.pop()?;
                if !matches!(class, Value::Global(Global::OrderedDict | Global::Size)) {
                    return Err(format!(
                        "NEWOBJ of a {} is not supported",
                        self.kind_of(&class)
                    ));
                }
                let result = self.call(&class, &args)?;
                self.push(result)?;
            }
            b'b' => {
                // An OrderedDict's attributes (`_metadata` of a state dict) carry nothing
                // mlpack reads; building anything else would need code.
                let _state = self.pop()?;
                let target = self.top()?;
                if !matches!(self.object_of(&target), Some(Object::Dict(_))) {
                    return Err(format!(
                        "BUILD of a {} is not supported",
                        self.kind_of(&target)
                    ));
                }
            }
            b'a' => {
                let item = self.pop()?;
                self.list_mut()?.push(item);
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.list_mut()?.extend(items);
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.dict_mut()?.push((key, value));
            }
            b'u' => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return Err("SETITEMS with an odd number of items".into());
                }
                let mut items = items.into_iter();
                let dict = self.dict_mut()?;
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    dict.push((k, v));
                }
            }
            b'.' => return Ok(false),
            other => {
                return Err(match opcode_name(other) {
                    Some(name) => format!("pickle opcode {name} (0x{other:02x}) is not supported"),
                    None => format!("unknown pickle opcode 0x{other:02x}"),
                })
            }
        }
        Ok(true)
    }

    /// The result of calling allow-listed `callable` with the tuple `args`.
    fn call(&mut self, callable: &Value, args: &Value) -> Result<Value, String> {
        let Value::Global(global) = callable else {
            return Err(format!("a call of a {}", self.kind_of(callable)));
        };
        let args = match self.object_of(args) {
            Some(Object::Tuple(items)) => items.clone(),
            _ => {
                return Err(format!(
                    "{} called with a {}",
                    global.python_name(),
                    self.kind_of(args)
                ))
            }
        };
        match global {
            Global::OrderedDict if args.is_empty() => self.new_object(Object::Dict(Vec::new())),
            Global::Size if args.len() == 1 => {
                let sizes = self.int_tuple(&args[0], "torch.Size")?;
                self.new_object(Object::Tuple(sizes.into_iter().map(Value::Int).collect()))
            }
            Global::RebuildTensorV2 if (6..=7).contains(&args.len()) => {
                let storage = match self.object_of(&args[0]) {
                    Some(Object::Storage(s)) => s.clone(),
                    _ => {
                        return Err(format!(
                            "_rebuild_tensor_v2 of a {}, not a storage",
                            self.kind_of(&args[0])
                        ))
                    }
                };
                let Value::Int(offset) = args[1] else {
                    return Err(
                        "_rebuild_tensor_v2 with a storage offset that is not an int".into(),
                    );
                };
                let view = View {
                    dtype: storage.dtype,
                    sizes: self.int_tuple(&args[2], "_rebuild_tensor_v2 sizes")?,
                    strides: self.int_tuple(&args[3], "_rebuild_tensor_v2 strides")?,
                    offset,
                };
                self.new_object(Object::Tensor(TensorRef { storage, view }))
            }
            Global::RebuildFromTypeV2 if args.len() == 4 => {
                // (function, type, arguments, attributes): the attributes (`persistent`,
                // `_is_buffer`) mean nothing here; any type but torch.Tensor is a subclass
                // whose code would have to run.
                if args[1] != Value::Global(Global::Tensor) {
                    return Err(format!(
                        "_rebuild_from_type_v2 of a {} (only plain torch.Tensor is read)",
                        self.kind_of(&args[1])
                    ));
                }
                if args[0] != Value::Global(Global::RebuildTensorV2) {
                    return Err("_rebuild_from_type_v2 of something other than \
                                _rebuild_tensor_v2"
                        .into());
                }
                self.call(&args[0], &args[2])
            }
            Global::RebuildParameter | Global::RebuildParameterWithState
                if (3..=4).contains(&args.len()) =>
            {
                match self.object_of(&args[0]) {
                    Some(Object::Tensor(_)) => Ok(args[0].clone()),
                    _ => Err(format!(
                        "{} of a {}, not a tensor",
                        global.python_name(),
                        self.kind_of(&args[0])
                    )),
                }
            }
            _ => Err(format!(
                "{} called with {} arguments",
                global.python_name(),
                args.len()
            )),
        }
    }

    /// The storage a persistent id names.
    fn storage_ref(&self, pid: &Value) -> Result<StorageRef, String> {
        let bad = || "a persistent id that is not ('storage', <type>, key, location, numel)";
        let Some(Object::Tuple(items)) = self.object_of(pid) else {
            return Err(bad().into());
        };
        match items.as_slice() {
            [Value::Str(tag), Value::Global(Global::Storage(dtype)), Value::Str(key), Value::Str(_), Value::Int(numel)]
                if &**tag == "storage" =>
            {
                Ok(StorageRef {
                    dtype: *dtype,
                    key: key.to_string(),
                    numel: *numel,
                })
            }
            _ => Err(bad().into()),
        }
    }

    /// The ints of a tuple value (sizes or strides).
    fn int_tuple(&self, value: &Value, what: &str) -> Result<Vec<i64>, String> {
        let Some(Object::Tuple(items)) = self.object_of(value) else {
            return Err(format!("{what} is a {}, not a tuple", self.kind_of(value)));
        };
        items
            .iter()
            .map(|v| match v {
                Value::Int(i) => Ok(*i),
                _ => Err(format!("{what} holds a {}", self.kind_of(v))),
            })
            .collect()
    }

    fn object_of(&self, value: &Value) -> Option<&Object> {
        match value {
            Value::Object(id) => self.objects.get(*id),
            _ => None,
        }
    }

    fn kind_of(&self, value: &Value) -> &'static str {
        kind(&self.objects, value)
    }

    /// The list on top of the stack, for APPEND(S).
    fn list_mut(&mut self) -> Result<&mut Vec<Value>, String> {
        let top = self.top()?;
        let kind = self.kind_of(&top);
        match top {
            Value::Object(id) => match &mut self.objects[id] {
                Object::List(items) => Ok(items),
                _ => Err(format!("APPEND to a {kind}")),
            },
            _ => Err(format!("APPEND to a {kind}")),
        }
    }

    /// The dict on top of the stack, for SETITEM(S).
    fn dict_mut(&mut self) -> Result<&mut Vec<(Value, Value)>, String> {
        let top = self.top()?;
        let kind = self.kind_of(&top);
        match top {
            Value::Object(id) => match &mut self.objects[id] {
                Object::Dict(entries) => Ok(entries),
                _ => Err(format!("SETITEM on a {kind}")),
            },
            _ => Err(format!("SETITEM on a {kind}")),
        }
    }

    fn memoize(&mut self, index: u32) -> Result<(), String> {
        let top = self.top()?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&index) {
            return Err(format!("more than {MAX_MEMO} memo entries"));
        }
        self.memo.insert(index, top);
        Ok(())
    }

    fn count(&mut self) -> Result<(), String> {
        self.created += 1;
        if self.created > MAX_VALUES {
            return Err(format!("the pickle creates more than {MAX_VALUES} values"));
        }
        Ok(())
    }

    fn push(&mut self, value: Value) -> Result<(), String> {
        self.count()?;
        self.stack.push(value);
        Ok(())
    }

    fn new_object(&mut self, object: Object) -> Result<Value, String> {
        self.count()?;
        self.objects.push(object);
        Ok(Value::Object(self.objects.len() - 1))
    }

    fn push_object(&mut self, object: Object) -> Result<(), String> {
        let value = self.new_object(object)?;
        self.stack.push(value);
        Ok(())
    }

    /// The lowest stack index the current MARK frame may touch.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Value, String> {
        if self.stack.len() <= self.floor() {
            return Err("the pickle pops an empty stack".into());
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    fn top(&self) -> Result<Value, String> {
        if self.stack.len() <= self.floor() {
            return Err("the pickle reads an empty stack".into());
        }
        Ok(self.stack.last().expect("checked above").clone())
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Value>, String> {
        if self.stack.len() < self.floor() + n {
            return Err("the pickle pops an empty stack".into());
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let start = self
            .marks
            .pop()
            .ok_or("an opcode needs a MARK that is missing")?;
        Ok(self.stack.split_off(start))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let left = self.bytes.len() - self.pos;
        if n > left {
            return Err(format!(
                "{n} bytes are announced but only {left} remain in the pickle"
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("N bytes taken"))
    }

    fn text(&mut self, n: usize) -> Result<Rc<str>, String> {
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(Rc::from)
            .map_err(|_| "a string that is not UTF-8".to_string())
    }

    /// A newline-terminated GLOBAL argument.
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .take(MAX_GLOBAL_LINE + 1)
            .position(|&b| b == b'\n')
            .ok_or("a GLOBAL name without a newline in its first 256 bytes")?;
        let text = std::str::from_utf8(&rest[..end])
            .map_err(|_| "a GLOBAL name that is not UTF-8")?
            .to_string();
        self.pos += end + 1;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pickle bytes: `PROTO 2`, `body`, `STOP`.
    fn pickle(body: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80, 2];
        out.extend_from_slice(body);
        out.push(b'.');
        out
    }

    fn unicode(s: &str) -> Vec<u8> {
        let mut out = vec![b'X'];
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out
    }

    /// `_rebuild_tensor_v2(storage(FloatStorage, key, numel), offset, sizes, strides, False,
    /// OrderedDict())` as pickle opcodes (one-element size and stride tuples).
    fn tensor(key: &str, numel: u8, offset: u8, size: u8, stride: u8) -> Vec<u8> {
        let mut out = b"ctorch._utils\n_rebuild_tensor_v2\n((".to_vec();
        out.extend(unicode("storage"));
        out.extend_from_slice(b"ctorch\nFloatStorage\n");
        out.extend(unicode(key));
        out.extend(unicode("cpu"));
        out.extend_from_slice(&[b'K', numel, b't', b'Q', b'K', offset]);
        out.extend_from_slice(&[b'K', size, 0x85, b'K', stride, 0x85, 0x89]);
        out.extend_from_slice(b"ccollections\nOrderedDict\n)RtR");
        out
    }

    #[test]
    fn scalars_strings_and_containers_parse() {
        let mut body = b"(".to_vec();
        body.extend_from_slice(&[b'N', 0x88, 0x89, b'J']);
        body.extend_from_slice(&(-5i32).to_le_bytes());
        body.extend_from_slice(&[b'M', 0x34, 0x12, 0x8a, 2, 0xff, 0x7f, 0x8a, 1, 0xff]);
        body.push(b'G');
        body.extend_from_slice(&1.5f64.to_be_bytes());
        body.extend(unicode("héllo"));
        body.extend_from_slice(&[b'C', 2, 1, 2]);
        body.extend_from_slice(b"]q\x00K\x07ah\x00t");
        let parsed = Pickle::parse(&pickle(&body)).unwrap();
        let Some(Object::Tuple(items)) = parsed.object(parsed.root()) else {
            panic!("not a tuple: {parsed:?}");
        };
        assert_eq!(
            &items[..9],
            &[
                Value::None,
                Value::Bool(true),
                Value::Bool(false),
                Value::Int(-5),
                Value::Int(0x1234),
                Value::Int(0x7fff),
                Value::Int(-1),
                Value::Float(1.5),
                Value::Str(Rc::from("héllo")),
            ]
        );
        assert_eq!(items[9], Value::Bytes(Rc::from(&[1u8, 2][..])));
        // The memoised list and the list appended to are the same object.
        assert_eq!(items[10], items[11]);
        assert_eq!(
            parsed.object(&items[10]),
            Some(&Object::List(vec![Value::Int(7)]))
        );
    }

    #[test]
    fn rebuilt_tensor_and_parameter_become_views_of_their_storage() {
        let mut body = b"ccollections\nOrderedDict\n)R(".to_vec();
        body.extend(unicode("w"));
        body.extend_from_slice(b"ctorch._utils\n_rebuild_parameter\n");
        body.extend(tensor("0", 6, 2, 3, 1));
        body.extend_from_slice(b"\x88ccollections\nOrderedDict\n)R\x87R");
        body.push(b'u');
        let parsed = Pickle::parse(&pickle(&body)).unwrap();
        let Some(Object::Dict(entries)) = parsed.object(parsed.root()) else {
            panic!("not a dict");
        };
        assert_eq!(entries[0].0, Value::Str(Rc::from("w")));
        let Some(Object::Tensor(t)) = parsed.object(&entries[0].1) else {
            panic!("not a tensor");
        };
        assert_eq!(
            t.storage,
            StorageRef {
                dtype: TorchDType::F32,
                key: "0".into(),
                numel: 6
            }
        );
        assert_eq!(
            t.view,
            View {
                dtype: TorchDType::F32,
                sizes: vec![3],
                strides: vec![1],
                offset: 2
            }
        );
    }

    #[test]
    fn tensors_with_attributes_are_read_only_as_plain_tensors() {
        // _rebuild_from_type_v2(_rebuild_tensor_v2, <type>, (…), {'persistent': False}).
        let with_type = |class: &[u8]| {
            let mut body =
                b"ctorch._tensor\n_rebuild_from_type_v2\n(ctorch._utils\n_rebuild_tensor_v2\n"
                    .to_vec();
            body.extend_from_slice(class);
            // The arguments of `tensor`'s call: without its leading GLOBAL and final REDUCE.
            let call = tensor("0", 4, 0, 4, 1);
            let start = b"ctorch._utils\n_rebuild_tensor_v2\n".len();
            body.extend_from_slice(&call[start..call.len() - 1]);
            body.push(b'}');
            body.extend(unicode("persistent"));
            body.extend_from_slice(b"\x89stR");
            Pickle::parse(&pickle(&body))
        };
        let parsed = with_type(b"ctorch\nTensor\n").unwrap();
        assert!(matches!(
            parsed.object(parsed.root()),
            Some(Object::Tensor(_))
        ));
        let err = with_type(b"ccollections\nOrderedDict\n").unwrap_err();
        assert!(err.contains("only plain torch.Tensor"), "{err}");
    }

    #[test]
    fn globals_outside_the_allow_list_are_refused_by_name() {
        for (global, shown) in [
            (&b"cposix\nsystem\n"[..], "posix.system"),
            (b"cos\nsystem\n", "os.system"),
            (b"cbuiltins\neval\n", "builtins.eval"),
            (b"c__builtin__\ngetattr\n", "__builtin__.getattr"),
            (
                b"ctorch._utils\n_rebuild_device_tensor_from_numpy\n",
                "torch._utils._rebuild_device_tensor_from_numpy",
            ),
        ] {
            let mut body = global.to_vec();
            body.extend(unicode("touch /tmp/mlpack-pwned"));
            body.extend_from_slice(&[0x85, b'R']);
            let err = Pickle::parse(&pickle(&body)).unwrap_err();
            assert!(
                err.contains(&format!("pickle global '{shown}' is not allowed")),
                "{err}"
            );
            assert!(err.contains("pickle byte 2"), "{err}");
        }
        // The protocol 4 spelling of the same global.
        let mut body = unicode("os");
        body.extend(unicode("system"));
        body.push(0x93);
        let err = Pickle::parse(&pickle(&body)).unwrap_err();
        assert!(err.contains("'os.system' is not allowed"), "{err}");
        let err = Pickle::parse(&pickle(b"ctorch\nComplexFloatStorage\n")).unwrap_err();
        assert!(
            err.contains("'torch.ComplexFloatStorage' is not supported"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_and_unknown_opcodes_are_named_with_their_offset() {
        let err = Pickle::parse(&pickle(b"N(i")).unwrap_err();
        assert_eq!(
            err,
            "pickle opcode INST (0x69) is not supported (pickle byte 4)"
        );
        let err = Pickle::parse(&pickle(b"\xff")).unwrap_err();
        assert_eq!(err, "unknown pickle opcode 0xff (pickle byte 2)");
    }

    #[test]
    fn hostile_lengths_and_structure_are_refused_without_allocating() {
        // A 4 GiB string announced in a few bytes.
        let err = Pickle::parse(&pickle(b"X\xff\xff\xff\xff")).unwrap_err();
        assert!(err.contains("only 1 remain"), "{err}");
        let err = Pickle::parse(&[0x80, 2, b'B', 0xff, 0xff, 0xff, 0x7f]).unwrap_err();
        assert!(err.contains("announced"), "{err}");
        // A memo index far away does not allocate a table that size.
        let err = Pickle::parse(&pickle(b"Nr\xff\xff\xff\xffj\x00\x00\x00\x00")).unwrap_err();
        assert!(err.contains("memo entry 0"), "{err}");
        // Deep MARK nesting.
        let err = Pickle::parse(&pickle(&[b'('; 100])).unwrap_err();
        assert!(err.contains("nest deeper"), "{err}");
        // Deep tuple nesting is fine to build and to drop (no recursion).
        let mut deep = vec![b'N'];
        deep.extend(std::iter::repeat_n(0x85, 200_000));
        assert!(Pickle::parse(&pickle(&deep)).is_ok());
        // Popping below the current MARK, a missing STOP, SETITEM on a non-dict.
        assert!(Pickle::parse(&pickle(b"N(\x85"))
            .unwrap_err()
            .contains("empty stack"));
        assert!(Pickle::parse(&[0x80, 2, b'N'])
            .unwrap_err()
            .contains("without STOP"));
        assert!(Pickle::parse(&pickle(b"]NNs"))
            .unwrap_err()
            .contains("SETITEM on a list"));
        // A LONG1 wider than 64 bits.
        let err =
            Pickle::parse(&pickle(b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01")).unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn persistent_ids_must_be_storages() {
        let mut body = unicode("anything");
        body.extend_from_slice(b"\x85Q");
        let err = Pickle::parse(&pickle(&body)).unwrap_err();
        assert!(err.contains("persistent id"), "{err}");
        // A tensor rebuilt on something that is not a storage.
        let err = Pickle::parse(&pickle(
            b"ctorch._utils\n_rebuild_tensor_v2\n(NK\x00))\x89NtR",
        ))
        .unwrap_err();
        assert!(err.contains("not a storage"), "{err}");
        // BUILD may only set a dict's attributes.
        let err = Pickle::parse(&pickle(b"]}b")).unwrap_err();
        assert!(err.contains("BUILD of a list"), "{err}");
    }
}
