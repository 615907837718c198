//! The instance side of `_ctypes` in Rust: `_CData` (a block of C memory, owned or
//! borrowed from another object, and the objects it keeps alive), `_SimpleCData` (its
//! `.value`), and the functions every ctypes program calls per object (`addressof`,
//! `sizeof`, `alignment`, `byref`).
//!
//! The metaclasses live in Python (`jitctypes._ctypes`); each ctypes class carries its
//! `CType` as the class attribute `__ctype__`, which is what the Rust side needs to know
//! about it. Arrays (array.rs), pointers (pointer.rs) and function pointers (funcptr.rs)
//! are further subclasses of `_CData`.

use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::{intern, Borrowed, PyClassInitializer};
use rawffi::memory::RawBuffer;

use crate::convert::{load, store, KeepAlive};
use crate::ctype::{CType, Code, Shape};
use crate::param::CArgObject;
use crate::scalar::FastScalar;

/// Where a view's memory is: `(address, base kept alive, index in base)`.
type View = (usize, Option<PyObject>, usize);

/// Keyword that `at_address` passes to `_CData.__new__` to make a view instead of an owner.
const VIEW_KEYWORD: &str = "_jitctypes_view_";

extern "C" {
    /// CPython's lookup of a name in the dicts of a type's MRO, through its per-type
    /// method cache (exported by 3.11–3.13; returns a borrowed reference, sets no error).
    fn _PyType_Lookup(
        type_: *mut pyo3::ffi::PyTypeObject,
        name: *mut pyo3::ffi::PyObject,
    ) -> *mut pyo3::ffi::PyObject;
}

/// A plain class attribute of `cls` (found in the dicts along its MRO, as
/// `type.__getattribute__` finds values that are not descriptors). Several times faster
/// than `getattr`: every `.value`, field and element access looks class data up this way.
pub fn class_attr<'py>(
    cls: &Bound<'py, PyType>,
    name: &Bound<'py, pyo3::types::PyString>,
) -> Option<Bound<'py, PyAny>> {
    // SAFETY: a live type and a str name; the result is borrowed from the type's dicts
    // and made an owned reference at once.
    unsafe {
        let found = _PyType_Lookup(cls.as_type_ptr(), name.as_ptr());
        (!found.is_null()).then(|| Bound::from_borrowed_ptr(cls.py(), found))
    }
}

/// `getattr(cls, name, None)` without raising and catching an `AttributeError` when the
/// attribute is missing (that costs ~1 µs, and type definitions ask for many absent
/// attributes such as `_check_retval_`). Exact as long as the metaclass keeps
/// `type.__getattribute__`, which finds attributes only along the metaclass's and the
/// class's MROs; other metaclasses get a plain `getattr`.
pub fn class_getattr_opt<'py>(
    cls: &Bound<'py, PyType>,
    name: &Bound<'py, pyo3::types::PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    // SAFETY: live type objects; `_PyType_Lookup` borrows and does not raise.
    let absent = unsafe {
        let metatype = pyo3::ffi::Py_TYPE(cls.as_ptr());
        let type_getattro = (*std::ptr::addr_of_mut!(pyo3::ffi::PyType_Type)).tp_getattro;
        // Addresses of CPython's own functions, one definition each.
        (*metatype).tp_getattro.map(|f| f as usize) == type_getattro.map(|f| f as usize)
            && _PyType_Lookup(cls.as_type_ptr(), name.as_ptr()).is_null()
            && _PyType_Lookup(metatype, name.as_ptr()).is_null()
    };
    if absent {
        return Ok(None);
    }
    cls.getattr_opt(name)
}

/// The `CType` of a ctypes class, or `TypeError("abstract class")` as stock ctypes says
/// for `Structure()` and friends.
pub fn class_ctype<'py>(cls: &Bound<'py, PyType>) -> PyResult<Bound<'py, CType>> {
    if let Some(ctype) = CTYPE_CACHE.get(cls) {
        return Ok(ctype);
    }
    let ctype = class_attr(cls, intern!(cls.py(), "__ctype__"))
        .and_then(|ctype| crate::known_types::as_ctype(&ctype).cloned())
        .ok_or_else(|| PyTypeError::new_err("abstract class"))?;
    CTYPE_CACHE.put(cls, &ctype);
    Ok(ctype)
}

/// The `__ctype__` of recently used classes, keyed by the class and its version tag:
/// CPython gives a class a new tag whenever it or a base changes (never reusing one), so
/// a hit is the attribute `_PyType_Lookup` would find, which the class keeps alive. A
/// lookup then costs two loads instead of a hash lookup in CPython's method cache.
static CTYPE_CACHE: ClassCache = ClassCache::new();

/// A direct-mapped cache from (class, version tag) to a borrowed object. Used with the GIL
/// held; atomics only because statics must be `Sync` (relaxed loads are plain loads).
pub struct ClassCache {
    entries: [ClassCacheEntry; 64],
}

struct ClassCacheEntry {
    class: AtomicUsize,
    version: std::sync::atomic::AtomicU32,
    value: AtomicUsize,
}

impl ClassCache {
    pub const fn new() -> ClassCache {
        ClassCache {
            entries: [const {
                ClassCacheEntry {
                    class: AtomicUsize::new(0),
                    version: std::sync::atomic::AtomicU32::new(0),
                    value: AtomicUsize::new(0),
                }
            }; 64],
        }
    }

    /// The class's version tag, if CPython assigned a valid one.
    fn version(cls: &Bound<'_, PyType>) -> Option<u32> {
        // SAFETY: reading two fields of a live type object.
        let (flags, tag) = unsafe {
            let type_object = cls.as_type_ptr();
            ((*type_object).tp_flags, (*type_object).tp_version_tag)
        };
        (flags & pyo3::ffi::Py_TPFLAGS_VALID_VERSION_TAG != 0 && tag != 0).then_some(tag)
    }

    fn entry(&self, cls: &Bound<'_, PyType>) -> &ClassCacheEntry {
        let address = cls.as_ptr() as usize;
        &self.entries[(address >> 4 ^ address >> 10) % self.entries.len()]
    }

    fn get<'py>(&self, cls: &Bound<'py, PyType>) -> Option<Bound<'py, CType>> {
        let version = Self::version(cls)?;
        let entry = self.entry(cls);
        if entry.class.load(Ordering::Relaxed) != cls.as_ptr() as usize
            || entry.version.load(Ordering::Relaxed) != version
        {
            return None;
        }
        let value = entry.value.load(Ordering::Relaxed) as *mut pyo3::ffi::PyObject;
        // SAFETY: the `CType` the class's unchanged dicts hold (see `CTYPE_CACHE`).
        Some(unsafe { Bound::from_borrowed_ptr(cls.py(), value).downcast_into_unchecked() })
    }

    /// True if `cls` was `note`d and has not changed since.
    pub fn holds(&self, cls: &Bound<'_, PyType>) -> bool {
        let Some(version) = Self::version(cls) else { return false };
        let entry = self.entry(cls);
        entry.class.load(Ordering::Relaxed) == cls.as_ptr() as usize
            && entry.version.load(Ordering::Relaxed) == version
    }

    /// Remembers `cls` as it is now (for `holds`; the value is not used). A class whose
    /// version tag was just invalidated (by an assignment to it) gets a new one first.
    pub fn note(&self, cls: &Bound<'_, PyType>) {
        if Self::version(cls).is_none() {
            // SAFETY: a live type and a str name; the lookup assigns a version tag.
            unsafe { _PyType_Lookup(cls.as_type_ptr(), intern!(cls.py(), "__ctype__").as_ptr()) };
        }
        let Some(version) = Self::version(cls) else { return };
        let entry = self.entry(cls);
        entry.class.store(cls.as_ptr() as usize, Ordering::Relaxed);
        entry.version.store(version, Ordering::Relaxed);
        entry.value.store(0, Ordering::Relaxed);
    }

    fn put(&self, cls: &Bound<'_, PyType>, value: &Bound<'_, CType>) {
        let Some(version) = Self::version(cls) else { return };
        let entry = self.entry(cls);
        entry.class.store(cls.as_ptr() as usize, Ordering::Relaxed);
        entry.version.store(version, Ordering::Relaxed);
        entry.value.store(value.as_ptr() as usize, Ordering::Relaxed);
    }
}

/// C memory seen from Python: `address` and `size`, owned (`_b_needsfree_`) or borrowed
/// from `_b_base_`, which is then kept alive.
#[pyclass(subclass, module = "_ctypes", name = "_CData")]
pub struct CData {
    /// The memory's address, unless `inline` holds it.
    address: usize,
    size: usize,
    storage: Option<RawBuffer>,
    /// Up to 16 owned bytes live in the object itself, as stock ctypes keeps small values
    /// (`c_int(5)` then needs no allocation). Its address is only known once the object
    /// is in place, hence `address()`.
    inline: Option<InlineCell>,
    base: Option<PyObject>,
    /// Position in `base` (ctypes' `_b_index`): keys of kept objects are paths of these.
    index: usize,
    pub(crate) objects: Option<PyObject>,
    /// Aggregates and arrays keep objects in a dict keyed by field path; scalars keep one.
    keeps_many: bool,
    /// How the value (simple types) or the elements (arrays) read and write on the fast
    /// paths (slots.rs), decided from the class when the object is made.
    fast: FastAccess,
}

/// What the fast accessors need of an object, without looking at its class.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastAccess {
    /// The kind of the value or elements, if `scalar.rs` handles it.
    pub scalar: Option<FastScalar>,
    /// Elements of an array (0 otherwise).
    pub length: usize,
    /// A pointer: `scalar` is the kind of what it points at.
    pub pointer: bool,
}

impl FastAccess {
    /// The fast access of instances of `cls`, whose C type is `ctype`.
    fn of_class(cls: &Bound<'_, PyType>, ctype: &CType) -> FastAccess {
        if matches!(ctype.shape, Shape::Array { .. }) || ctype.is_pointer_type {
            let Some(info) = class_attr(cls, intern!(cls.py(), "_jitctypes_elements_")) else {
                return FastAccess::default();
            };
            let Some(info) = crate::known_types::as_element_info(&info) else {
                return FastAccess::default();
            };
            let info = info.get();
            let scalar = (info.access == crate::field::Access::Value)
                .then(|| FastScalar::of(info.element_ctype.get()))
                .flatten();
            let pointer = ctype.is_pointer_type;
            return FastAccess { scalar, length: info.len, pointer };
        }
        FastAccess { scalar: FastScalar::of(ctype), length: 0, pointer: false }
    }
}

/// Where the `CData` part lies inside every ctypes instance (pyo3 puts a subclass's
/// contents after its base's, so it is the same for all); 0 until measured.
static CDATA_OFFSET: AtomicIsize = AtomicIsize::new(0);

/// Whether instances are built and freed in place (`place_in_new_object`,
/// `dealloc_in_place`) rather than through pyo3's initializer and deallocator chains,
/// which cost as much as the rest of `c_int(5)`. Set at module initialisation when a
/// probe shows that pyo3 keeps nothing in our instances but the `CData` and zero bytes
/// (its unused borrow flag is 0): zeroed memory with the `CData` moved in is then exactly
/// what pyo3 makes.
static IN_PLACE: AtomicBool = AtomicBool::new(false);

/// Measures `CDATA_OFFSET` on one instance, and decides `IN_PLACE` (at module
/// initialisation).
pub fn measure_cdata_offset(py: Python<'_>) -> PyResult<()> {
    use pyo3::PyTypeInfo;
    let probe = Bound::new(py, CData::view(0, 0, None, 0))?;
    let contents = {
        let contents = probe.borrow();
        &*contents as *const CData as isize
    };
    let offset = contents - probe.as_ptr() as isize;
    CDATA_OFFSET.store(offset, Ordering::Relaxed);

    // SAFETY: reading the sizes of live type objects.
    let basic_size = |ty: *mut pyo3::ffi::PyTypeObject| unsafe { (*ty).tp_basicsize } as usize;
    let size = basic_size(CData::type_object_raw(py));
    let subclasses_add_nothing = [
        SimpleCData::type_object_raw(py),
        crate::array::Array::type_object_raw(py),
        crate::pointer::Pointer::type_object_raw(py),
    ]
    .into_iter()
    .all(|ty| basic_size(ty) == size);
    let header = std::mem::size_of::<pyo3::ffi::PyObject>();
    let contents_end = offset as usize + std::mem::size_of::<CData>();
    let zero_besides_contents = header <= offset as usize && contents_end <= size && {
        // SAFETY: the probe's own `size` bytes; no borrow of it is alive.
        let bytes = unsafe { std::slice::from_raw_parts(probe.as_ptr().cast::<u8>(), size) };
        bytes[header..offset as usize].iter().chain(&bytes[contents_end..]).all(|&b| b == 0)
    };
    IN_PLACE.store(subclasses_add_nothing && zero_besides_contents, Ordering::Relaxed);
    Ok(())
}

/// Where the `CData` of an instance lies.
fn cdata_slot(obj: *mut pyo3::ffi::PyObject) -> *mut CData {
    obj.cast::<u8>().wrapping_offset(CDATA_OFFSET.load(Ordering::Relaxed)).cast()
}

/// Releases `reference` at once (pyo3 would queue it where it does not know that the
/// GIL is held). Call with the GIL held.
fn release_reference(reference: Option<PyObject>) {
    if let Some(reference) = reference {
        // SAFETY: an owned reference; the GIL is held (caller's contract).
        unsafe { pyo3::ffi::Py_DECREF(reference.into_ptr()) };
    }
}

/// Whether an instance of `subtype` can be built in place: `IN_PLACE`, and the class
/// allocates zeroed memory the standard way.
///
/// # Safety
/// `subtype` is a live type object.
unsafe fn can_place_in(subtype: *mut pyo3::ffi::PyTypeObject) -> bool {
    // SAFETY: caller's contract.
    let alloc = unsafe { (*subtype).tp_alloc };
    IN_PLACE.load(Ordering::Relaxed)
        && alloc.map(|alloc| alloc as usize)
            == Some(pyo3::ffi::PyType_GenericAlloc as *const () as usize)
}

/// What pyo3's initializer chain makes of `data` for a class deriving from our `_CData`,
/// `_SimpleCData`, `Array` or `_Pointer`, in one step: a zeroed instance with `data`
/// moved into it (inlined, so that the `CData` is built where it goes, not moved).
/// Returns a new reference.
///
/// # Safety
/// The GIL is held; `can_place_in(subtype)` and `subtype` derives from one of those
/// classes.
#[inline(always)]
unsafe fn place_in_new_object(
    py: Python<'_>,
    subtype: *mut pyo3::ffi::PyTypeObject,
    data: CData,
) -> PyResult<*mut pyo3::ffi::PyObject> {
    // SAFETY: caller's contract; the allocation is `subtype`'s basic size, zeroed, which
    // `IN_PLACE` found to be pyo3's state but for the `CData` written at its offset.
    unsafe {
        let object = pyo3::ffi::PyType_GenericAlloc(subtype, 0);
        if object.is_null() {
            data.release();
            return Err(PyErr::fetch(py));
        }
        std::ptr::write(cdata_slot(object), data);
        Ok(object)
    }
}

/// What pyo3's deallocator chain does for an instance of a class deriving from our
/// `_CData`, `_SimpleCData`, `Array` or `_Pointer` (whose own contents are empty), and
/// what it forgets (PyO3/pyo3#6223): releasing the instance's heap type. Returns false,
/// doing nothing, unless `IN_PLACE`.
///
/// # Safety
/// CPython's `tp_dealloc` contract for such an instance.
pub unsafe fn dealloc_in_place(obj: *mut pyo3::ffi::PyObject) -> bool {
    use pyo3::ffi;
    if !IN_PLACE.load(Ordering::Relaxed) {
        return false;
    }
    // SAFETY: the last reference went; the `CData` is moved out before the memory is
    // freed, and the type is read before and released last (it may go with the object).
    unsafe {
        let object_type = ffi::Py_TYPE(obj);
        if ffi::PyType_IS_GC(object_type) != 0 {
            ffi::PyObject_GC_UnTrack(obj.cast());
        }
        // Every field named, so that a new one is not forgotten; the others are plain
        // values (the inline bytes included).
        let CData {
            address: _,
            size: _,
            storage,
            inline: _,
            base,
            index: _,
            objects,
            keeps_many: _,
            fast: _,
        } = std::ptr::read(cdata_slot(obj));
        let free = (*object_type).tp_free.expect("every type has tp_free");
        free(obj.cast());
        drop(storage);
        release_reference(base);
        release_reference(objects);
        if ffi::PyType_HasFeature(object_type, ffi::Py_TPFLAGS_HEAPTYPE) != 0 {
            ffi::Py_DECREF(object_type.cast());
        }
    }
    true
}

/// The `CData` of a ctypes instance, read without pyo3's borrow flag (an atomic update
/// that costs as much as the rest of a fast field read).
///
/// # Safety
/// The GIL is held and `obj` is a live ctypes instance. No `&mut CData` may be alive:
/// the code that borrows one mutably never runs Python code before releasing it (objects
/// it replaces are dropped after), so the slots that call this cannot run meanwhile.
pub unsafe fn cdata_unchecked<'a>(obj: *mut pyo3::ffi::PyObject) -> &'a CData {
    let offset = CDATA_OFFSET.load(Ordering::Relaxed);
    debug_assert_ne!(offset, 0, "measured at module initialisation");
    // SAFETY: caller's contract; the offset was measured on an instance.
    unsafe { &*(obj.cast::<u8>().offset(offset).cast::<CData>()) }
}

/// The inline storage of small values: 16 bytes, aligned for any scalar, written through
/// raw pointers (C and the conversions) while Rust holds shared references to the object.
#[derive(Default)]
#[repr(C, align(16))]
struct InlineCell(std::cell::UnsafeCell<[u8; 16]>);

// SAFETY: the bytes are C memory like a `RawBuffer`'s: any synchronisation of their
// contents is the user's, as in C.
unsafe impl Sync for InlineCell {}

impl CData {
    #[inline(always)]
    fn owning(size: usize, align: usize, inline_ok: bool) -> PyResult<CData> {
        if inline_ok && size <= 16 && align <= 16 {
            return Ok(CData {
                size,
                inline: Some(InlineCell::default()),
                ..CData::view(0, 0, None, 0)
            });
        }
        let storage =
            RawBuffer::new(size, align).map_err(pyo3::exceptions::PyMemoryError::new_err)?;
        let address = storage.as_ptr() as usize;
        Ok(CData { address, size, storage: Some(storage), ..CData::view(0, 0, None, 0) })
    }

    /// Drops this state where pyo3 may not know that the GIL is held (a slot CPython
    /// calls directly), where dropping a `Py` would only queue its release: the kept
    /// references are released at once. Call with the GIL held.
    fn release(mut self) {
        release_reference(self.base.take());
        release_reference(self.objects.take());
    }

    #[inline(always)]
    fn view(address: usize, size: usize, base: Option<PyObject>, index: usize) -> CData {
        CData {
            address,
            size,
            storage: None,
            inline: None,
            base,
            index,
            objects: None,
            keeps_many: false,
            fast: FastAccess::default(),
        }
    }

    /// The initializer `__new__` returns for `cls`: owned zeroed memory of the class's size,
    /// or a view when called through `at_address`.
    pub fn for_class(
        cls: &Bound<'_, PyType>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<CData> {
        CData::for_class_inline(cls, kwargs, true)
    }

    /// `for_class`; `inline_ok=false` keeps the memory out of the object (function
    /// pointer objects record its address before the object is in place).
    pub fn for_class_inline(
        cls: &Bound<'_, PyType>,
        kwargs: Option<&Bound<'_, PyDict>>,
        inline_ok: bool,
    ) -> PyResult<CData> {
        let view = match kwargs.map(|kw| kw.get_item(VIEW_KEYWORD)).transpose()?.flatten() {
            Some(view) => Some(view.extract::<(usize, Option<PyObject>, usize)>()?),
            None => None,
        };
        CData::of_class(cls, view, inline_ok)
    }

    /// The memory of a new instance of `cls`: owned and zeroed, or a view of
    /// `(address, base, index)`.
    #[inline(always)] // into `new_instance_of`: the `CData` is built in its object
    fn of_class(cls: &Bound<'_, PyType>, view: Option<View>, inline_ok: bool) -> PyResult<CData> {
        let ctype = class_ctype(cls)?;
        let ctype = ctype.get();
        let (keeps_many, fast) = CData::class_traits(cls, ctype)?;
        if let Some((address, base, index)) = view {
            return Ok(CData { keeps_many, fast, ..CData::view(address, ctype.size, base, index) });
        }
        Ok(CData { keeps_many, fast, ..CData::owning(ctype.size, ctype.align, inline_ok)? })
    }

    /// What every instance of `cls` (of C type `ctype`) shares: whether it keeps objects
    /// in a dict (aggregates, arrays, pointers) and its fast access. Marks structures and
    /// unions final, as stock does when their first instance is made.
    fn class_traits(cls: &Bound<'_, PyType>, ctype: &CType) -> PyResult<(bool, FastAccess)> {
        let keeps_many =
            ctype.is_pointer_type || matches!(ctype.shape, Shape::Aggregate | Shape::Array { .. });
        let fast = FastAccess::of_class(cls, ctype);
        if matches!(ctype.shape, Shape::Aggregate) {
            // Stock's rule: once a structure or union has an instance (made any way), its
            // `_fields_` can no longer change its layout under that instance.
            crate::slots::mark_final(cls)?;
        }
        Ok((keeps_many, fast))
    }

    /// Where the object's memory is.
    pub fn address(&self) -> usize {
        match &self.inline {
            Some(bytes) => bytes.0.get() as usize,
            None => self.address,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn fast(&self) -> FastAccess {
        self.fast
    }

    /// Replaces the kept objects (`cast` shares them between source and result).
    /// Returns the objects replaced, for the caller to drop once its borrow is released
    /// (dropping may run Python code).
    #[must_use]
    pub fn set_objects(&mut self, objects: Option<PyObject>) -> Option<PyObject> {
        std::mem::replace(&mut self.objects, objects)
    }

    /// The kept objects `cast` shares with its result: a root object's are made a dict
    /// first if it keeps nothing yet (stock's `PyCData_GetContainer` + dict); a view's are
    /// shared as they are.
    pub fn shared_objects(source: &Bound<'_, CData>) -> PyResult<Option<PyObject>> {
        let py = source.py();
        // Made before the mutable borrow: allocating may run the garbage collector, and
        // with it Python code that reads this object (see `cdata_unchecked`).
        let fresh = PyDict::new(py).into_any().unbind();
        let mut data = source.borrow_mut();
        if data.base.is_some() {
            return Ok(data.objects.as_ref().map(|objects| objects.clone_ref(py)));
        }
        let objects = match &data.objects {
            Some(objects) if !objects.is_none(py) => objects.clone_ref(py),
            _ => fresh,
        };
        let replaced = data.objects.replace(objects.clone_ref(py));
        drop(data);
        drop(replaced); // after the borrow: dropping may run Python code
        Ok(Some(objects))
    }

    /// What assigning `source` into another object keeps alive (stock's
    /// `GetKeepedObjects`): the kept objects of the root of `source`'s base chain, a dict
    /// made on first use for aggregates, arrays and pointers; None for a bare scalar.
    pub fn container_objects(source: &Bound<'_, CData>) -> PyResult<Option<PyObject>> {
        let py = source.py();
        let mut root = source.clone();
        loop {
            let base = match &root.borrow().base {
                Some(base) => base.bind(py).clone(),
                None => break,
            };
            root = base.downcast_into::<CData>()?;
        }
        let needs_dict = {
            let data = root.borrow();
            data.objects.is_none() && data.keeps_many
        };
        if needs_dict {
            // Made before the mutable borrow, as in `shared_objects`.
            let fresh = PyDict::new(py).into_any().unbind();
            let mut data = root.borrow_mut();
            if data.objects.is_none() {
                data.objects = Some(fresh);
            }
        }
        let data = root.borrow();
        Ok(data.objects.as_ref().map(|objects| objects.clone_ref(py)))
    }

    /// The object's memory as a byte slice.
    fn bytes(&self) -> &[u8] {
        // SAFETY: the object's memory holds `size` bytes while it lives.
        unsafe { std::slice::from_raw_parts(self.address() as *const u8, self.size) }
    }
}

/// One Python object for what a store asked to keep alive, or None if nothing.
fn kept_object(py: Python<'_>, mut keep: KeepAlive) -> PyResult<Option<PyObject>> {
    Ok(match keep.len() {
        0 => None,
        1 => keep.pop(),
        _ => Some(PyTuple::new(py, keep)?.into_any().unbind()),
    })
}

/// Keeps `kept` alive as long as the memory of `target` (ctypes' `KeepRef`): in the root
/// object of `target`'s base chain, under the key of `index`'s path (hex indices joined by
/// `:`, innermost first, as stock ctypes names them), or as the root's only kept object
/// when the root is a scalar.
pub fn keep_ref(target: &Bound<'_, CData>, index: usize, kept: KeepAlive) -> PyResult<()> {
    keep_ref_at(target, index as isize, kept)
}

/// The key of `index` in a root object's kept objects (its hex form), made once for the
/// small indices that pointers (0 and 1), fields and elements mostly use.
fn keep_key(py: Python<'_>, index: isize) -> Bound<'_, pyo3::types::PyString> {
    const CACHED: usize = 32;
    static KEYS: GILOnceCell<Vec<Py<pyo3::types::PyString>>> = GILOnceCell::new();
    match usize::try_from(index) {
        Ok(small) if small < CACHED => {
            let keys = KEYS.get_or_init(py, || {
                let key = |index: usize| pyo3::types::PyString::intern(py, &format!("{index:x}"));
                (0..CACHED).map(|index| key(index).unbind()).collect()
            });
            keys[small].bind(py).clone()
        }
        _ => pyo3::types::PyString::new(py, &format!("{:x}", index as i32 as u32)),
    }
}

/// `keep_ref` for any index; stock formats a negative one as a C `int` in hex
/// (`-1` → `ffffffff`, the key `from_buffer` uses).
fn keep_ref_at(target: &Bound<'_, CData>, index: isize, kept: KeepAlive) -> PyResult<()> {
    let py = target.py();
    let Some(kept) = kept_object(py, kept)? else { return Ok(()) };
    let mut path: Option<String> = None;
    let mut root = target.clone();
    loop {
        let base = {
            let data = root.borrow();
            match &data.base {
                Some(base) => {
                    let path = path.get_or_insert_with(|| format!("{:x}", index as i32 as u32));
                    path.push_str(&format!(":{:x}", data.index));
                    base.bind(py).clone()
                }
                None => break,
            }
        };
        root = base.downcast_into::<CData>()?;
    }
    let key = match path {
        Some(path) => pyo3::types::PyString::new(py, &path),
        None => keep_key(py, index),
    };
    // A dict needed is made before the mutable borrow, as in `CData::shared_objects`.
    let needs_dict = {
        let data = root.borrow();
        let has_dict = matches!(&data.objects, Some(objects)
            if objects.bind(py).is_instance_of::<PyDict>());
        data.keeps_many && !has_dict
    };
    let fresh = needs_dict.then(|| PyDict::new(py).into_any().unbind());
    let mut data = root.borrow_mut();
    if !data.keeps_many {
        let replaced = data.objects.replace(kept);
        drop(data);
        drop(replaced); // after the borrow: dropping may run Python code
        return Ok(());
    }
    let (dict, replaced) = match &data.objects {
        Some(objects) if objects.bind(py).is_instance_of::<PyDict>() => {
            (objects.clone_ref(py), None)
        }
        _ => {
            // (Only if code run by the allocation above replaced the dict: a rare path.)
            let dict = fresh.unwrap_or_else(|| PyDict::new(py).into_any().unbind());
            (dict.clone_ref(py), data.objects.replace(dict))
        }
    };
    drop(data);
    drop(replaced); // after the borrow, as above
    dict.bind(py).set_item(key, kept)
}

#[pymethods]
impl CData {
    #[new]
    #[classmethod]
    #[pyo3(signature = (*_args, **kwargs))]
    fn new(
        cls: &Bound<'_, PyType>,
        _args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<CData> {
        CData::for_class(cls, kwargs)
    }

    #[getter(_b_base_)]
    fn b_base(&self, py: Python<'_>) -> PyObject {
        self.base.as_ref().map_or_else(|| py.None(), |base| base.clone_ref(py))
    }

    #[getter(_b_needsfree_)]
    fn b_needsfree(&self) -> bool {
        self.storage.is_some() || self.inline.is_some()
    }

    #[getter(_objects)]
    fn objects(&self, py: Python<'_>) -> PyObject {
        self.objects.as_ref().map_or_else(|| py.None(), |objects| objects.clone_ref(py))
    }

    /// Exports the object's memory, always writable, with its type's format and shape.
    /// The `BufferFormat` is held by the view (`internal`) so that the format and shape
    /// it points at outlive it even if the type is changed meanwhile.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        _flags: std::os::raw::c_int,
    ) -> PyResult<()> {
        let py = slf.py();
        let format = match class_getattr_opt(&slf.get_type(), intern!(py, "_jitctypes_buffer_"))? {
            Some(format) => format.downcast_into::<BufferFormat>()?,
            None => Bound::new(py, BufferFormat::new("B", Vec::new(), slf.borrow().size)?)?,
        };
        let (address, size) = {
            let data = slf.borrow();
            (data.address(), data.size)
        };
        let info = format.get();
        // SAFETY: CPython hands us a view to fill; the pointers stored stay valid while the
        // view holds `obj` and `internal` (released in `__releasebuffer__`).
        unsafe {
            (*view).buf = address as *mut std::ffi::c_void;
            (*view).obj = slf.clone().into_any().into_ptr();
            (*view).len = size as pyo3::ffi::Py_ssize_t;
            (*view).readonly = 0;
            (*view).itemsize = info.itemsize as pyo3::ffi::Py_ssize_t;
            (*view).format = info.format.as_ptr() as *mut std::ffi::c_char;
            (*view).ndim = info.shape.len() as std::os::raw::c_int;
            (*view).shape = if info.shape.is_empty() {
                std::ptr::null_mut()
            } else {
                info.shape.as_ptr() as *mut pyo3::ffi::Py_ssize_t
            };
            (*view).strides = std::ptr::null_mut();
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = format.into_ptr().cast();
        }
        Ok(())
    }

    unsafe fn __releasebuffer__(_slf: Bound<'_, Self>, view: *mut pyo3::ffi::Py_buffer) {
        // SAFETY: `internal` holds the reference to the `BufferFormat` taken above.
        unsafe {
            let internal = (*view).internal.cast::<pyo3::ffi::PyObject>();
            if !internal.is_null() {
                pyo3::ffi::Py_DecRef(internal);
                (*view).internal = std::ptr::null_mut();
            }
        }
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.base)?;
        visit.call(&self.objects)
    }

    /// Breaks reference cycles through kept objects (a callback whose callable refers back
    /// to the function pointer keeping it). The base stays: this object's memory is its.
    fn __clear__(&mut self) {
        self.objects = None;
    }

    /// What a function's out-parameter of this type returns: the object itself (simple
    /// types return their value).
    fn __ctypes_from_outparam__<'py>(slf: &Bound<'py, CData>) -> Bound<'py, CData> {
        slf.clone()
    }

    /// Pickling: `_ctypes._unpickle(type, (__dict__, memory bytes))`; objects holding
    /// pointers cannot be pickled.
    fn __reduce__<'py>(slf: &Bound<'py, CData>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let cls = slf.get_type();
        if let Some(flag) = class_getattr_opt(&cls, intern!(py, "_jitctypes_has_pointer_"))? {
            if flag.is_truthy()? {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "ctypes objects containing pointers cannot be pickled",
                ));
            }
        }
        let unpickle = py.import("jitctypes._ctypes")?.getattr(intern!(py, "_unpickle"))?;
        let dict = slf.getattr(intern!(py, "__dict__"))?;
        let data = pyo3::types::PyBytes::new(py, slf.borrow().bytes());
        let state = PyTuple::new(py, [dict, data.into_any()])?;
        PyTuple::new(
            py,
            [unpickle, PyTuple::new(py, [cls.into_any(), state.into_any()])?.into_any()],
        )
    }

    /// Restores pickled state: the memory (as far as it goes) and the `__dict__`.
    fn __setstate__(slf: &Bound<'_, CData>, dict: &Bound<'_, PyDict>, data: &[u8]) -> PyResult<()> {
        {
            let this = slf.borrow();
            let len = data.len().min(this.size);
            // SAFETY: the object's memory holds `size >= len` bytes.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), this.address() as *mut u8, len) };
        }
        let own = slf.getattr(intern!(slf.py(), "__dict__"))?;
        let own = own
            .downcast::<PyDict>()
            .map_err(|_| PyTypeError::new_err("__dict__ must be a dictionary"))?;
        own.update(dict.as_mapping())?;
        Ok(())
    }
}

/// `resize(obj, size)`: grows (or shrinks back) the memory an object owns; never below
/// its type's size.
#[pyfunction]
pub fn resize(obj: &Bound<'_, CData>, size: isize) -> PyResult<()> {
    let minimum = class_ctype(&obj.get_type())?.get().size;
    if size < minimum as isize {
        return Err(pyo3::exceptions::PyValueError::new_err(format!("minimum size is {minimum}")));
    }
    let mut data = obj.borrow_mut();
    let align = match (&data.storage, &data.inline) {
        (Some(old), _) => old.align(),
        (None, Some(_)) => 16,
        (None, None) => {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "Memory cannot be resized because this object doesn't own it",
            ))
        }
    };
    let size = size as usize;
    let storage = RawBuffer::new(size, align).map_err(pyo3::exceptions::PyMemoryError::new_err)?;
    let kept = data.size.min(size);
    // SAFETY: both buffers hold at least `kept` bytes and do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(data.address() as *const u8, storage.as_ptr(), kept) };
    data.inline = None;
    data.address = storage.as_ptr() as usize;
    data.size = size;
    data.storage = Some(storage);
    let address = data.address;
    drop(data);
    if let Ok(function) = obj.downcast::<crate::funcptr::CFuncPtr>() {
        crate::funcptr::CFuncPtr::memory_moved(function, address);
    }
    Ok(())
}

/// Keeps `value` alive with `target` under `index` (ctypes' `KeepRef`), for the metaclass
/// methods that make views of other objects' memory (`from_buffer`).
#[pyfunction]
pub fn keep(target: &Bound<'_, CData>, index: isize, value: PyObject) -> PyResult<()> {
    keep_ref_at(target, index, vec![value])
}

/// The address of the memory a `memoryview` exposes (ctypes' `from_buffer` views it).
#[pyfunction]
pub fn buffer_address(view: &Bound<'_, pyo3::types::PyMemoryView>) -> PyResult<usize> {
    let buffer = pyo3::buffer::PyBuffer::<u8>::get(view.as_any())?;
    Ok(buffer.buf_ptr() as usize)
}

/// An instance of `cls` viewing `address` (ctypes' `from_address`, fields of aggregate
/// type): no memory is allocated; `base` is kept alive by it; `index` is the position in
/// `base` (a field's or element's number).
#[pyfunction]
#[pyo3(signature = (cls, address, base = None, index = 0))]
pub fn at_address<'py>(
    cls: &Bound<'py, PyType>,
    address: usize,
    base: Option<PyObject>,
    index: usize,
) -> PyResult<Bound<'py, PyAny>> {
    new_instance(cls, Some((address, base, index)))
}

/// A new instance of `cls` made without its Python-level `__new__` and `__init__` (stock
/// allocates views and call results directly), owning zeroed memory or viewing `view`.
/// Built in Rust for the classes whose Rust base has no other state; function pointers
/// go through their Rust `__new__`.
pub fn new_instance<'py>(
    cls: &Bound<'py, PyType>,
    view: Option<View>,
) -> PyResult<Bound<'py, PyAny>> {
    use crate::known_types::{derives_from, is_cdata_class, Base};
    let py = cls.py();
    if !is_cdata_class(cls) {
        return Err(PyTypeError::new_err(format!("{} is not a ctypes type", cls.name()?)));
    }
    let base = derives_from(cls);
    if base == Base::FunctionPointer {
        // Its Rust `__new__` records the function state; Python-level `__new__`s are skipped.
        use pyo3::PyTypeInfo;
        let kwargs = PyDict::new(py);
        if let Some(view) = view {
            kwargs.set_item(VIEW_KEYWORD, view)?;
        }
        let new = crate::funcptr::CFuncPtr::type_object(py).getattr(intern!(py, "__new__"))?;
        return new.call((cls,), Some(&kwargs));
    }
    // SAFETY: `base` is what `cls` derives from.
    unsafe { new_instance_of(cls, base, view) }
}

/// `new_instance` for a class known to derive from the Rust class `base` (not function
/// pointers).
///
/// # Safety
/// `cls` derives from `base`'s Rust class.
pub unsafe fn new_instance_of<'py>(
    cls: &Bound<'py, PyType>,
    base: crate::known_types::Base,
    view: Option<View>,
) -> PyResult<Bound<'py, PyAny>> {
    use crate::known_types::Base;
    use pyo3::impl_::pyclass_init::PyObjectInit;
    let py = cls.py();
    let subtype = cls.as_type_ptr();
    let data = CData::of_class(cls, view, true)?;
    // SAFETY: `cls` derives from `base`'s Rust class (caller's contract), a live type.
    if base != Base::FunctionPointer && unsafe { can_place_in(subtype) } {
        // SAFETY: as above.
        let object = unsafe { place_in_new_object(py, subtype, data) }?;
        // SAFETY: a new reference to the object just made.
        return Ok(unsafe { Bound::from_owned_ptr(py, object) });
    }
    let data = PyClassInitializer::from(data);
    // SAFETY: `cls` derives from the Rust class whose initializer is used (caller's
    // contract); pyo3 allocates the object with `subtype`'s allocator.
    let object = unsafe {
        match base {
            Base::Simple => data.add_subclass(SimpleCData).into_new_object(py, subtype),
            Base::Array => data.add_subclass(crate::array::Array).into_new_object(py, subtype),
            Base::Pointer => {
                data.add_subclass(crate::pointer::Pointer).into_new_object(py, subtype)
            }
            Base::Data => data.into_new_object(py, subtype),
            Base::FunctionPointer => unreachable!("function pointers have their own __new__"),
        }
    }?;
    // SAFETY: a new reference to the object just made.
    Ok(unsafe { Bound::from_owned_ptr(py, object) })
}

/// `_SimpleCData`: one scalar; `.value` converts with the rules of its type code.
#[pyclass(extends = CData, subclass, module = "_ctypes", name = "_SimpleCData")]
pub struct SimpleCData;

impl SimpleCData {
    /// What `__init__` does (also the fast `tp_init` of slots.rs).
    pub fn init_with(slf: &Bound<'_, SimpleCData>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        match args.len() {
            0 => Ok(()),
            1 => SimpleCData::set_value(slf, &args.get_item(0)?),
            n => {
                Err(PyTypeError::new_err(format!("__init__ expected at most 1 argument, got {n}")))
            }
        }
    }

    fn scalar_ctype<'py>(slf: &Bound<'py, SimpleCData>) -> PyResult<Bound<'py, CType>> {
        class_ctype(&slf.get_type())
    }
}

#[pymethods]
impl SimpleCData {
    #[new]
    #[classmethod]
    #[pyo3(signature = (*_args, **kwargs))]
    fn new(
        cls: &Bound<'_, PyType>,
        _args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyClassInitializer<SimpleCData>> {
        Ok(PyClassInitializer::from(CData::for_class(cls, kwargs)?).add_subclass(SimpleCData))
    }

    /// `c_int()` keeps the zeroed value; `c_int(None)` sets None (and so fails, as stock).
    #[pyo3(signature = (*args, **_kwargs))]
    fn __init__(
        slf: &Bound<'_, SimpleCData>,
        args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        SimpleCData::init_with(slf, args)
    }

    #[getter]
    pub fn value(slf: &Bound<'_, SimpleCData>) -> PyResult<PyObject> {
        let ctype = SimpleCData::scalar_ctype(slf)?;
        let address = slf.as_super().borrow().address();
        // SAFETY: the object's memory holds a value of its class's type.
        unsafe { load(slf.py(), ctype.get(), address as *const u8) }
    }

    #[setter]
    pub fn set_value(slf: &Bound<'_, SimpleCData>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let ctype = SimpleCData::scalar_ctype(slf)?;
        let address = slf.as_super().borrow().address();
        let mut keep = KeepAlive::new();
        // SAFETY: as for `value`.
        unsafe { store(value, ctype.get(), address as *mut u8, &mut keep)? };
        keep_ref(slf.as_super(), 0, keep)
    }

    fn __bool__(slf: &Bound<'_, SimpleCData>) -> bool {
        let base = slf.as_super().borrow();
        // SAFETY: the object's memory holds `size` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(base.address() as *const u8, base.size) };
        bytes.iter().any(|&byte| byte != 0)
    }

    fn __repr__(slf: &Bound<'_, SimpleCData>) -> PyResult<String> {
        let cls = slf.get_type();
        let name = cls.name()?;
        if is_direct_simple_type(&cls)? {
            let value = SimpleCData::value(slf)?;
            Ok(format!("{name}({})", value.bind(slf.py()).repr()?))
        } else {
            Ok(format!("<{name} object at {:#x}>", slf.as_ptr() as usize))
        }
    }

    /// What a function returning this type gives Python: the plain value for the basic
    /// types (`c_int` → int), the instance itself for user subclasses.
    fn __ctypes_from_outparam__(slf: &Bound<'_, SimpleCData>) -> PyResult<PyObject> {
        if is_direct_simple_type(&slf.get_type())? {
            SimpleCData::value(slf)
        } else {
            Ok(slf.clone().into_any().unbind())
        }
    }
}

/// True for the basic simple types (`c_int`, ...), whose direct base is `_SimpleCData`;
/// the metaclass records it as `_jitctypes_basic_`.
fn is_direct_simple_type(cls: &Bound<'_, PyType>) -> PyResult<bool> {
    match class_attr(cls, intern!(cls.py(), "_jitctypes_basic_")) {
        Some(flag) => flag.is_truthy(),
        None => Ok(false),
    }
}

/// `addressof(obj)`: the address of an instance's memory.
#[pyfunction]
pub fn addressof(obj: &Bound<'_, PyAny>) -> PyResult<usize> {
    let cdata =
        crate::known_types::as_cdata(obj).ok_or_else(|| PyTypeError::new_err("invalid type"))?;
    Ok(cdata.borrow().address())
}

/// `byref(obj, offset=0)`.
#[pyfunction]
#[pyo3(signature = (obj, offset = 0))]
pub fn byref(obj: &Bound<'_, PyAny>, offset: isize) -> PyResult<CArgObject> {
    let cdata = crate::known_types::as_cdata(obj).ok_or_else(|| {
        let name = obj.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        PyTypeError::new_err(format!("byref() argument must be a ctypes instance, not '{name}'"))
    })?;
    let address = cdata.borrow().address().wrapping_add_signed(offset);
    Ok(CArgObject::pointer_into(obj.clone().unbind(), address))
}

/// The direct forms of `byref(x)`, `addressof(x)`, `sizeof(x)` and `pointer(x)`
/// (fastfn.rs).
pub fn install_direct_functions(module: &Bound<'_, PyModule>) -> PyResult<()> {
    crate::fastfn::install::<0>(module, c"byref", byref_direct)?;
    crate::fastfn::install::<1>(module, c"addressof", addressof_direct)?;
    crate::fastfn::install::<2>(module, c"sizeof", sizeof_direct)?;
    crate::fastfn::install::<3>(module, c"pointer", crate::pointer::pointer_direct)
}

/// `byref(instance)`.
///
/// # Safety
/// See `fastfn::DirectBody`.
unsafe fn byref_direct(
    py: Python<'_>,
    obj: *mut pyo3::ffi::PyObject,
) -> Option<*mut pyo3::ffi::PyObject> {
    use pyo3::impl_::pyclass_init::PyObjectInit;
    // SAFETY: caller's contract; `obj` is checked to be a ctypes instance first.
    unsafe {
        if !crate::known_types::is_cdata(obj) {
            return None;
        }
        let address = cdata_unchecked(obj).address();
        let argument = CArgObject::pointer_into(PyObject::from_borrowed_ptr(py, obj), address);
        let made =
            PyClassInitializer::from(argument).into_new_object(py, crate::known_types::carg_type());
        Some(made.unwrap_or_else(|error| {
            error.restore(py);
            std::ptr::null_mut()
        }))
    }
}

/// `addressof(instance)`.
///
/// # Safety
/// See `fastfn::DirectBody`.
unsafe fn addressof_direct(
    _py: Python<'_>,
    obj: *mut pyo3::ffi::PyObject,
) -> Option<*mut pyo3::ffi::PyObject> {
    // SAFETY: caller's contract; `obj` is checked to be a ctypes instance first.
    unsafe {
        crate::known_types::is_cdata(obj)
            .then(|| crate::fastfn::size_object(cdata_unchecked(obj).address()))
    }
}

/// `sizeof(instance)` and `sizeof(ctypes class)`.
///
/// # Safety
/// See `fastfn::DirectBody`.
unsafe fn sizeof_direct(
    py: Python<'_>,
    obj: *mut pyo3::ffi::PyObject,
) -> Option<*mut pyo3::ffi::PyObject> {
    // SAFETY: caller's contract; each branch checks what `obj` is first.
    unsafe {
        if crate::known_types::is_cdata(obj) {
            return Some(crate::fastfn::size_object(cdata_unchecked(obj).size));
        }
        if pyo3::ffi::PyType_Check(obj) == 0 {
            return None;
        }
        let cls = Borrowed::from_ptr(py, obj);
        let ctype = class_ctype(cls.downcast_unchecked::<PyType>()).ok()?;
        Some(crate::fastfn::size_object(ctype.get().size))
    }
}

/// `sizeof(type_or_instance)`.
#[pyfunction]
pub fn sizeof(obj: &Bound<'_, PyAny>) -> PyResult<usize> {
    if let Some(cdata) = crate::known_types::as_cdata(obj) {
        return Ok(cdata.borrow().size);
    }
    type_ctype(obj).map(|ctype| ctype.get().size)
}

/// `alignment(type_or_instance)`.
#[pyfunction]
pub fn alignment(obj: &Bound<'_, PyAny>) -> PyResult<usize> {
    let cls = if obj.is_instance_of::<CData>() { obj.get_type().into_any() } else { obj.clone() };
    type_ctype(&cls).map(|ctype| ctype.get().align)
}

fn type_ctype<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, CType>> {
    let no_size = || PyTypeError::new_err("this type has no size");
    let cls = obj.downcast::<PyType>().map_err(|_| no_size())?;
    class_ctype(cls).map_err(|_| no_size())
}

/// Checks that `code` names a simple type (the metaclass's `_type_` validation).
#[pyfunction]
pub fn is_simple_type_code(code: &str) -> bool {
    Code::from_letter(code).is_some()
}

/// What a ctypes type exports through the buffer protocol (PEP 3118): its format string,
/// shape and item size, computed once per type by the metaclass (`_jitctypes_buffer_`).
#[pyclass(frozen, module = "jitctypes._rawffi")]
pub struct BufferFormat {
    format: std::ffi::CString,
    shape: Vec<pyo3::ffi::Py_ssize_t>,
    itemsize: usize,
}

#[pymethods]
impl BufferFormat {
    #[new]
    pub fn new(format: &str, shape: Vec<isize>, itemsize: usize) -> PyResult<BufferFormat> {
        // A NUL (from a field name) ends the format, as it ends stock's C string.
        let format = format.split('\0').next().unwrap_or_default();
        let format = std::ffi::CString::new(format).expect("no NUL left");
        Ok(BufferFormat { format, shape, itemsize })
    }

    #[getter]
    fn format(&self) -> String {
        self.format.to_string_lossy().into_owned()
    }

    #[getter]
    fn shape(&self) -> Vec<isize> {
        self.shape.clone()
    }
}
