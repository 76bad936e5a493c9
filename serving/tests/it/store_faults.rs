//! Faults of a model store as the server sees them: a version copied by hand
//! (whose manifest names another version) is refused instead of reloaded at
//! every look of the watcher, and a reload frees the model it replaces.

use crate::support::synth_engine;
use encore_model::artifact::store::Store;
use encore_serving::AppState;
use encore_serving::state::ModelSource;
use std::sync::Arc;

#[test]
fn a_copied_version_is_refused_not_reloaded_again_and_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.publish(&mut synth_engine("v1")).unwrap();
    store.set_current("v1").unwrap();
    let state = AppState::load_from(ModelSource::Store(store.clone())).unwrap();

    // `cp -r versions/v1 versions/copy; echo copy > CURRENT`: a whole model
    // that calls itself v1. Swapped in, CURRENT would still differ from the
    // serving version, so the watcher would reload it at every interval.
    std::fs::create_dir(store.dir_of("copy")).unwrap();
    for f in std::fs::read_dir(store.dir_of("v1")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), store.dir_of("copy").join(f.file_name())).unwrap();
    }
    std::fs::write(dir.path().join("CURRENT"), "copy\n").unwrap();
    assert!(state.store_moved());
    let err = state.reload().unwrap_err().to_string();
    assert!(
        err.contains("manifest.json") && err.contains("'copy'"),
        "{err}"
    );
    assert_eq!(
        state
            .reloads()
            .failed
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(state.engine().unwrap().manifest().model_version, "v1");
    // Nor does a server start on it.
    assert!(AppState::load_from(ModelSource::Store(store.clone())).is_err());
}

#[test]
fn a_reload_frees_the_model_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for v in ["v1", "v2", "v3"] {
        store.publish(&mut synth_engine(v)).unwrap();
    }
    store.set_current("v1").unwrap();
    let state = AppState::load_from(ModelSource::Store(store.clone())).unwrap();
    let first = Arc::downgrade(&state.engine().unwrap());
    // A request that holds the old model keeps it until it finishes.
    let in_flight = state.engine().unwrap();
    store.set_current("v2").unwrap();
    state.reload().unwrap();
    assert!(first.upgrade().is_some());
    drop(in_flight);
    assert!(first.upgrade().is_none(), "v1 is still referenced");
    let second = Arc::downgrade(&state.engine().unwrap());
    store.set_current("v3").unwrap();
    state.reload().unwrap();
    assert!(second.upgrade().is_none(), "v2 is still referenced");
    assert_eq!(state.engine().unwrap().manifest().model_version, "v3");
}

/// A reload waits (a bounded time) for requests still on the old model, so
/// that it frees that model itself and gives its memory back, rather than a
/// worker freeing it later where nothing trims the heap.
#[test]
fn a_reload_waits_briefly_for_requests_on_the_old_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for v in ["v1", "v2"] {
        store.publish(&mut synth_engine(v)).unwrap();
    }
    store.set_current("v1").unwrap();
    let state = AppState::load_from(ModelSource::Store(store.clone())).unwrap();
    let first = Arc::downgrade(&state.engine().unwrap());
    let in_flight = state.engine().unwrap();
    let (go, started) = std::sync::mpsc::channel::<()>();
    let request = std::thread::spawn(move || {
        started.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(in_flight);
    });
    store.set_current("v2").unwrap();
    go.send(()).unwrap();
    let t = std::time::Instant::now();
    state.reload().unwrap();
    assert!(
        first.upgrade().is_none(),
        "the reload returned while a request still held v1"
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    request.join().unwrap();
}

/// The store records the current version's manifest digest: a manifest
/// edited after its promotion is refused by a reload and at start, naming
/// the file, and the old model keeps serving.
#[test]
fn an_edited_manifest_of_the_current_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for v in ["v1", "v2"] {
        store.publish(&mut synth_engine(v)).unwrap();
    }
    store.set_current("v1").unwrap();
    let state = AppState::load_from(ModelSource::Store(store.clone())).unwrap();
    store.set_current("v2").unwrap();
    let manifest = store.dir_of("v2").join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replacen("  ", " ", 1)).unwrap();
    let err = state.reload().unwrap_err().to_string();
    assert!(
        err.contains("v2/manifest.json") && err.contains("SHA-256"),
        "{err}"
    );
    assert_eq!(state.engine().unwrap().manifest().model_version, "v1");
    let Err(err) = AppState::load_from(ModelSource::Store(store.clone())) else {
        panic!("started on an edited manifest");
    };
    assert!(err.to_string().contains("manifest.json"), "{err}");
}
