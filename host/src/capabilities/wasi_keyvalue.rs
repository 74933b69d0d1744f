//! `wasi:keyvalue@0.2.0-draft2` (store, atomics, batch), as Spin 3 modules import it, mapped
//! onto the module's own `nukisashi:platform/kv` store: one bucket, `default` (the empty
//! name too), behind the same `kv` grant, key and value limits and quota. Every call goes
//! through the platform kv functions, so scoping and limits are decided in one place.

use super::standard::wasi::keyvalue::{atomics, batch, store};
use super::wit::kv::Host as PlatformKv;
use super::wit::types::Error as PlatformError;
use super::{Capability, PlatformState};
use store::Error;
use wasmtime::component::Resource;

/// An open bucket: the module's own store (there is no other to name).
pub struct Bucket;

/// A key's value as a `cas` handle saw it.
pub struct Cas {
    key: String,
    seen: Option<Vec<u8>>,
}

/// Handles (buckets and `cas`) one request may hold at once; each `cas` keeps a value in
/// host memory, so they are bounded like everything else a module can make the host hold.
pub const MAX_HANDLES: usize = 64;

/// The names `open` accepts: Spin's default store and wasmCloud's unnamed one.
const STORE_NAMES: [&str; 2] = ["default", ""];

/// The key-value handles a request holds, by their handle number. (A plain map, not a
/// `ResourceTable`: the platform state is shared across awaits and must be `Sync`.)
#[derive(Default)]
pub struct Handles {
    held: std::collections::BTreeMap<u32, Held>,
    next: u32,
}

enum Held {
    Bucket,
    Cas(Cas),
}

impl Handles {
    fn push(&mut self, held: Held) -> Result<u32, Error> {
        if self.held.len() >= MAX_HANDLES {
            return Err(Error::Other(format!("a request may hold at most {MAX_HANDLES} key-value handles at once; drop some first")));
        }
        self.next = self.next.checked_add(1).ok_or_else(|| Error::Other("this request opened too many key-value handles".into()))?;
        self.held.insert(self.next, held);
        Ok(self.next)
    }

    fn bucket(&mut self) -> Result<Resource<Bucket>, Error> {
        self.push(Held::Bucket).map(Resource::new_own)
    }

    fn cas(&mut self, cas: Cas) -> Result<Resource<Cas>, Error> {
        self.push(Held::Cas(cas)).map(Resource::new_own)
    }

    fn seen(&self, cas: &Resource<Cas>) -> Result<Option<Vec<u8>>, Error> {
        match self.held.get(&cas.rep()) {
            Some(Held::Cas(cas)) => Ok(cas.seen.clone()),
            _ => Err(Error::Other("no such cas handle".into())),
        }
    }

    fn take_cas(&mut self, cas: Resource<Cas>) -> Result<Cas, Error> {
        match self.held.remove(&cas.rep()) {
            Some(Held::Cas(cas)) => Ok(cas),
            _ => Err(Error::Other("no such cas handle".into())),
        }
    }

    fn drop_handle(&mut self, rep: u32) {
        self.held.remove(&rep);
    }
}

fn standard(e: PlatformError) -> Error {
    match e {
        PlatformError::NotGranted(_) => Error::AccessDenied,
        PlatformError::TooLarge(why) | PlatformError::Invalid(why) | PlatformError::Unavailable(why) => Error::Other(why),
    }
}

impl PlatformState {
    /// Values of several keys, refused as a whole if together they exceed one host call.
    async fn read_many(&mut self, keys: Vec<String>) -> Result<Vec<Option<(String, Vec<u8>)>>, Error> {
        if keys.len() > super::kv::MAX_PAGE as usize {
            return Err(Error::Other(format!("get-many takes at most {} keys, this call has {}", super::kv::MAX_PAGE, keys.len())));
        }
        let mut values = Vec::with_capacity(keys.len());
        let mut bytes = 0usize;
        for key in keys {
            let value = PlatformKv::get(self, key.clone()).await.map_err(standard)?;
            bytes += value.as_ref().map_or(0, Vec::len);
            if bytes > self.host_call_bytes {
                return Err(Error::Other(format!(
                    "get-many returns at most {} bytes in one call (the limit is [limits] host_call_bytes); ask for fewer keys",
                    self.host_call_bytes
                )));
            }
            values.push(value.map(|v| (key, v)));
        }
        Ok(values)
    }
}

impl store::Host for PlatformState {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, Error> {
        self.require(Capability::Kv).map_err(standard)?;
        if !STORE_NAMES.contains(&identifier.as_str()) {
            return Err(Error::NoSuchStore);
        }
        self.kv_handles.bucket()
    }
}

impl store::HostBucket for PlatformState {
    async fn get(&mut self, _: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>, Error> {
        PlatformKv::get(self, key).await.map_err(standard)
    }

    async fn set(&mut self, _: Resource<Bucket>, key: String, value: Vec<u8>) -> Result<(), Error> {
        PlatformKv::set(self, key, value).await.map_err(standard)
    }

    async fn delete(&mut self, _: Resource<Bucket>, key: String) -> Result<(), Error> {
        PlatformKv::delete(self, key).await.map(drop).map_err(standard)
    }

    async fn exists(&mut self, _: Resource<Bucket>, key: String) -> Result<bool, Error> {
        PlatformKv::get(self, key).await.map(|v| v.is_some()).map_err(standard)
    }

    async fn list_keys(&mut self, _: Resource<Bucket>, cursor: Option<String>) -> Result<store::KeyResponse, Error> {
        let page = PlatformKv::list_keys(self, String::new(), cursor, super::kv::MAX_PAGE).await.map_err(standard)?;
        Ok(store::KeyResponse { keys: page.keys, cursor: page.next })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.kv_handles.drop_handle(bucket.rep());
        Ok(())
    }
}

impl atomics::Host for PlatformState {
    async fn increment(&mut self, _: Resource<Bucket>, key: String, delta: i64) -> Result<i64, Error> {
        PlatformKv::increment(self, key, delta).await.map_err(standard)
    }

    async fn swap(&mut self, cas: Resource<Cas>, value: Vec<u8>) -> Result<(), atomics::CasError> {
        let Cas { key, seen } = self.kv_handles.take_cas(cas).map_err(atomics::CasError::StoreError)?;
        let swapped = self.swap_value(&key, seen.as_deref(), value).await.map_err(atomics::CasError::StoreError)?;
        if swapped {
            return Ok(());
        }
        let fresh = match self.new_cas(key).await {
            Ok(fresh) => fresh,
            Err(e) => return Err(atomics::CasError::StoreError(e)),
        };
        Err(atomics::CasError::CasFailed(fresh))
    }
}

impl PlatformState {
    async fn new_cas(&mut self, key: String) -> Result<Resource<Cas>, Error> {
        let seen = PlatformKv::get(self, key.clone()).await.map_err(standard)?;
        self.kv_handles.cas(Cas { key, seen })
    }

    /// Stores `value` if `key` still holds `seen`; false if it changed.
    async fn swap_value(&mut self, key: &str, seen: Option<&[u8]>, value: Vec<u8>) -> Result<bool, Error> {
        self.require(Capability::Kv).map_err(standard)?;
        if self.kv_writes.is_some() {
            // During a change delivery writes are held and committed with the delivery (see
            // `increment`): compare against what this delivery sees.
            let current = PlatformKv::get(self, key.to_string()).await.map_err(standard)?;
            if current.as_deref() != seen {
                return Ok(false);
            }
            return PlatformKv::set(self, key.to_string(), value).await.map(|()| true).map_err(standard);
        }
        self.check_key(key).and_then(|()| self.check_value(&value)).map_err(standard)?;
        self.db.kv_swap(&self.kv_scope(), key, seen, &value, self.quota()).await.map_err(|e| standard(super::kv::unavailable(e)))?.map_err(|over| {
            self.governor.refused("kv-quota");
            Error::Other(over.0)
        })
    }
}

impl atomics::HostCas for PlatformState {
    async fn new(&mut self, _: Resource<Bucket>, key: String) -> Result<Resource<Cas>, Error> {
        self.new_cas(key).await
    }

    async fn current(&mut self, cas: Resource<Cas>) -> Result<Option<Vec<u8>>, Error> {
        self.kv_handles.seen(&cas)
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.kv_handles.drop_handle(cas.rep());
        Ok(())
    }
}

impl batch::Host for PlatformState {
    async fn get_many(&mut self, _: Resource<Bucket>, keys: Vec<String>) -> Result<Vec<Option<(String, Vec<u8>)>>, Error> {
        self.read_many(keys).await
    }

    async fn set_many(&mut self, _: Resource<Bucket>, key_values: Vec<(String, Vec<u8>)>) -> Result<(), Error> {
        for (key, value) in key_values {
            PlatformKv::set(self, key, value).await.map_err(standard)?;
        }
        Ok(())
    }

    async fn delete_many(&mut self, _: Resource<Bucket>, keys: Vec<String>) -> Result<(), Error> {
        for key in keys {
            PlatformKv::delete(self, key).await.map_err(standard)?;
        }
        Ok(())
    }
}
