// The desktop backend: Tauri commands, channels, dialogs and the thumbnail protocol. This folder
// is the only place in the UI that imports @tauri-apps.
import { Channel, convertFileSrc, invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';
import { getCurrentWebview } from '@tauri-apps/api/webview';
import { getCurrentWindow } from '@tauri-apps/api/window';
import { open, save } from '@tauri-apps/plugin-dialog';
import type { Backend, Progress, SaveKind, Startup, TrainEvent } from './types';

const SAVE_FILTERS: Record<SaveKind, string> = { safetensors: 'safetensors', csv: 'CSV table', json: 'JSON' };

// What this build reads as images, from the backend at start-up (HEIC only where libheif is built in).
let imageExtensions: string[] = [];

function channel<T>(handler: (message: T) => void): Channel<T> {
  const result = new Channel<T>();
  result.onmessage = handler;
  return result;
}

export const tauriBackend: Backend = {
  kind: 'desktop',
  startup: async () => {
    const startup = await invoke<Startup>('startup');
    imageExtensions = startup.image_extensions;
    return startup;
  },
  pickFolder: async (title) => (await open({ directory: true, multiple: false, title })) ?? null,
  pickImage: async () =>
    (await open({ multiple: false, filters: [{ name: 'Images', extensions: imageExtensions }] })) ?? null,
  pickWeights: async () =>
    (await open({
      multiple: false,
      title: 'Pretrained weights: torchvision ResNet-18 (.pth as downloaded, or safetensors)',
      filters: [{ name: 'PyTorch checkpoint or safetensors', extensions: ['pth', 'pt', 'ckpt', 'safetensors'] }],
    })) ?? null,
  pickSaveFile: async (defaultPath, kind = 'safetensors') =>
    (await save({ defaultPath, filters: [{ name: SAVE_FILTERS[kind], extensions: [kind] }] })) ?? null,
  thumbnailUrl: (path) => convertFileSrc(path, 'thumb'),
  onFileDrop: async (handler) =>
    getCurrentWebview().onDragDropEvent((event) => {
      if (event.payload.type === 'drop') handler(event.payload.paths);
    }),
  // The app listens for as long as it runs, so the unsubscribe is not kept.
  onClosing: (listener) => void listen('closing', () => listener()),
  closeWindow: () => getCurrentWindow().close(),

  scanFolder: (path) => invoke('scan_folder', { path }),
  checkFolder: (path, imageSize, job, progress: (p: Progress) => void) =>
    invoke('check_folder', { path, imageSize, job, progress: channel(progress) }),
  cancelJob: (job) => invoke('cancel_job', { job }),
  cacheSummary: () => invoke('cache_summary'),
  clearCache: () => invoke('clear_cache'),
  demoFolders: () => invoke('demo_folders'),
  augmentPreview: (paths, ops, imageSize, seed, device, augmentOn) => invoke('augment_preview', { paths, ops, imageSize, seed, device, augmentOn }),

  listDevices: () => invoke('list_devices'),
  connectRemote: (address, token) => invoke('connect_remote', { address, token }),
  startTraining: (request, onEvent: (event: TrainEvent) => void) =>
    invoke('start_training', { request, events: channel(onEvent) }),
  resumeTraining: (runDir, epochs, device, acceptChangedFolder, onEvent) =>
    invoke('resume_training', { runDir, epochs, device, acceptChangedFolder, events: channel(onEvent) }),
  pauseTraining: () => invoke('pause_training'),
  unpauseTraining: () => invoke('unpause_training'),
  stopTraining: () => invoke('stop_training'),
  listRuns: () => invoke('list_runs'),
  openRun: (runDir) => invoke('open_run', { runDir }),
  renameRun: (runDir, name) => invoke('rename_run', { runDir, name }),
  deleteRun: (runDir) => invoke('delete_run', { runDir }),

  openHashedFolder: (folder, job, progress) => invoke('open_hashed_folder', { folder, job, progress: channel(progress) }),
  openCollection: (model, folder, device, job, progress) =>
    invoke('open_collection', { model, folder, device, job, progress: channel(progress) }),
  neighbors: (key, index, k) => invoke('neighbors', { key, index, k }),
  queryFile: (key, path, k) => invoke('query_file', { key, path, k }),
  distributions: (key) => invoke('distributions', { key }),
  embeddingMap: (key, method, job, progress) => invoke('embedding_map', { key, method, job, progress: channel(progress) }),
  duplicateThreshold: (key) => invoke('duplicate_threshold', { key }),
  readiness: (key) => invoke('readiness', { key }),
  findDuplicates: (key, threshold) => invoke('find_duplicates', { key, threshold }),
  markDuplicatesResolved: (key, members, keep) => invoke('mark_duplicates_resolved', { key, members, keep }),
  saveDuplicates: (key, threshold, format, destination) => invoke('save_duplicates', { key, threshold, format, destination }),
  clusterCollection: (key, k, job, progress) => invoke('cluster_collection', { key, k, job, progress: channel(progress) }),
  saveClusters: (key, k, destination) => invoke('save_clusters', { key, k, destination }),

  exportModel: (modelDir, destination) => invoke('export_model', { modelDir, destination }),
  exportEmbeddings: (key, destination) => invoke('export_embeddings', { key, destination }),
};
