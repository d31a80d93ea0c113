//! `wasi:keyvalue` (store, atomics, batch; 0.2.0-draft) for components,
//! on the route's key-value stores. wasmtime-wasi-keyvalue is a
//! synchronous in-memory map, so these host bindings are our own, from the
//! same WIT (`wit/keyvalue`): every operation is asynchronous on the shard
//! (the store thread or Redis answers while the shard serves others).
//! Store errors reach the guest as the interface's `error`, never a trap.

use std::rc::Rc;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use self::bindings::wasi::keyvalue::{atomics, batch, store};
use super::state::ComponentState;
use crate::kv::{KvError, RouteStores, Store};
use crate::stats::{KeyValueResult, RouteStats};
use crate::wasm::route::RouteContext;
use crate::wasm::shard_local::ShardLocal;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: {
            "wasi:keyvalue/store.open": trappable,
            default: async | trappable,
        },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
        },
    });
}

/// An open store, as the guest holds it.
pub struct Bucket(ShardLocal<Rc<Store>>);

/// What a component's store data holds for `wasi:keyvalue`.
pub struct KeyValueCtx {
    stores: ShardLocal<RouteStores>,
    route: String,
    stats: Arc<RouteStats>,
}

impl KeyValueCtx {
    pub fn new(route: &RouteContext) -> KeyValueCtx {
        KeyValueCtx {
            stores: ShardLocal::new(route.key_value.clone()),
            route: route.label.clone(),
            stats: route.stats.clone(),
        }
    }
}

/// The part of the store data the bindings borrow.
pub struct KeyValueView<'a> {
    table: &'a mut ResourceTable,
    ctx: &'a mut KeyValueCtx,
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

pub fn add_to_linker(linker: &mut Linker<ComponentState>) -> wasmtime::Result<()> {
    fn view(state: &mut ComponentState) -> KeyValueView<'_> {
        let (table, ctx) = state.key_value_parts();
        KeyValueView { table, ctx }
    }
    store::add_to_linker::<_, HasKeyValue>(linker, view)?;
    atomics::add_to_linker::<_, HasKeyValue>(linker, view)?;
    batch::add_to_linker::<_, HasKeyValue>(linker, view)?;
    Ok(())
}

type Outcome<T> = wasmtime::Result<Result<T, store::Error>>;

impl KeyValueView<'_> {
    fn bucket(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<ShardLocal<Rc<Store>>> {
        Ok(self.table.get(bucket)?.0.clone())
    }

    /// The guest's error for a store error; the ones worth an operator's
    /// attention are logged with the route's name.
    fn error(&self, function: &str, error: KvError) -> store::Error {
        error.record(
            &self.ctx.stats,
            &self.ctx.route,
            format_args!("wasi:keyvalue {function}"),
        );
        match error {
            KvError::NoSuchStore(_) => store::Error::NoSuchStore,
            KvError::AccessDenied(_) => store::Error::AccessDenied,
            other => store::Error::Other(other.to_string()),
        }
    }

    /// Runs `operation` on the bucket's store (a shard-local future) and
    /// turns its error into the guest's.
    async fn run<T, F, Fut>(&mut self, function: &str, bucket: &Resource<Bucket>, operation: F) -> Outcome<T>
    where
        F: FnOnce(Rc<Store>) -> Fut,
        Fut: Future<Output = Result<T, KvError>>,
    {
        let store = self.bucket(bucket)?;
        let result = ShardLocal::new(operation(Rc::clone(&store))).await;
        if result.is_ok() {
            self.ctx.stats.key_value(KeyValueResult::Ok);
        }
        Ok(result.map_err(|e| self.error(function, e)))
    }
}

impl store::Host for KeyValueView<'_> {
    fn open(&mut self, identifier: String) -> Outcome<Resource<Bucket>> {
        match self.ctx.stores.open(&identifier) {
            Ok(store) => Ok(Ok(self.table.push(Bucket(ShardLocal::new(store)))?)),
            Err(e) => Ok(Err(self.error("open", e))),
        }
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Outcome<Option<Vec<u8>>> {
        self.run("get", &bucket, |store| async move { store.get(&key).await })
            .await
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Outcome<()> {
        self.run("set", &bucket, |store| async move { store.set(&key, value).await })
            .await
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Outcome<()> {
        self.run("delete", &bucket, |store| async move { store.delete(&key).await })
            .await
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Outcome<bool> {
        self.run("exists", &bucket, |store| async move { store.exists(&key).await })
            .await
    }

    async fn list_keys(&mut self, bucket: Resource<Bucket>, cursor: Option<u64>) -> Outcome<store::KeyResponse> {
        let cursor = cursor.filter(|&c| c > 0);
        let page = self
            .run(
                "list-keys",
                &bucket,
                |store| async move { store.list_keys(cursor).await },
            )
            .await?;
        Ok(page.map(|page| store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        }))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    /// WIT's `delta` is a u64: read as two's complement, so a guest
    /// decrements with `u64::MAX` for -1; the result likewise.
    async fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: u64) -> Outcome<u64> {
        let value = self
            .run("increment", &bucket, |store| async move {
                store.increment(&key, delta as i64).await
            })
            .await?;
        Ok(value.map(|v| v as u64))
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Outcome<Vec<Option<(String, Vec<u8>)>>> {
        self.run("get-many", &bucket, |store| async move {
            let values = store.get_many(keys.clone()).await?;
            Ok(keys.into_iter().zip(values).map(|(k, v)| v.map(|v| (k, v))).collect())
        })
        .await
    }

    async fn set_many(&mut self, bucket: Resource<Bucket>, pairs: Vec<(String, Vec<u8>)>) -> Outcome<()> {
        self.run("set-many", &bucket, |store| async move { store.set_many(pairs).await })
            .await
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Outcome<()> {
        self.run(
            "delete-many",
            &bucket,
            |store| async move { store.delete_many(keys).await },
        )
        .await
    }
}
