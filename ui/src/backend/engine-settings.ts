// Generated from the engine by src-tauri/src/ipc_types.rs: do not edit. To update after
// changing the engine's settings: SPREADOUT_WRITE_IPC_TYPES=1 cargo test -p spreadout-app ipc_types

import type { TrainSettings } from './ipc';

/** What the desktop backend's `startup` sends as `settings`: `TrainSettings::default()`. */
export const ENGINE_SETTINGS: TrainSettings = {
  "defaults": {
    "epochs": 200,
    "batch_size": 128,
    "image_size": 32,
    "width": 64,
    "dim": 128,
    "tau": 0.1,
    "lr": 0.03,
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "schedule": "step",
    "seed": 0,
    "augment": {
      "crop": true,
      "color_jitter": true,
      "grayscale": true,
      "flip": true
    },
    "method": "spreadout",
    "method_settings": {
      "memory_momentum": 0.5,
      "nce_noise": 4096,
      "triplet_margin": 0.5
    },
    "negatives": "all",
    "positive": "augmented",
    "knn_k": 200,
    "knn_sigma": 0.1,
    "recall_k": [
      1,
      2,
      4,
      8
    ],
    "precision": "f32",
    "augment_on": "auto",
    "device_data_mb": 1024,
    "checkpoint_minutes": 10.0
  },
  "limits": {
    "epochs": {
      "min": 1.0,
      "inclusive": true,
      "whole": true
    },
    "batch_size": {
      "min": 2.0,
      "inclusive": true,
      "whole": true
    },
    "image_size": {
      "min": 8.0,
      "inclusive": true,
      "whole": true
    },
    "width": {
      "min": 1.0,
      "inclusive": true,
      "whole": true
    },
    "dim": {
      "min": 1.0,
      "inclusive": true,
      "whole": true
    },
    "tau": {
      "min": 0.0,
      "inclusive": false,
      "whole": false
    },
    "lr": {
      "min": 0.0,
      "inclusive": false,
      "whole": false
    },
    "momentum": {
      "min": 0.0,
      "inclusive": true,
      "whole": false
    },
    "weight_decay": {
      "min": 0.0,
      "inclusive": true,
      "whole": false
    },
    "seed": {
      "min": 0.0,
      "inclusive": true,
      "whole": true
    },
    "knn_k": {
      "min": 1.0,
      "inclusive": true,
      "whole": true
    },
    "knn_sigma": {
      "min": 0.0,
      "inclusive": false,
      "whole": false
    },
    "device_data_mb": {
      "min": 0.0,
      "inclusive": true,
      "whole": true
    },
    "checkpoint_minutes": {
      "min": 0.0,
      "inclusive": false,
      "whole": false
    }
  },
  "methods": [
    {
      "method": "spreadout",
      "tau": 0.1,
      "views": 2
    },
    {
      "method": "npsoftmax",
      "tau": 0.07,
      "views": 1
    },
    {
      "method": "nce",
      "tau": 0.07,
      "views": 1
    },
    {
      "method": "exemplar",
      "tau": 0.1,
      "views": 1
    },
    {
      "method": "triplet",
      "tau": 0.1,
      "views": 2
    },
    {
      "method": "triplet-hard",
      "tau": 0.1,
      "views": 2
    }
  ]
};
