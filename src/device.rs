//! Where training runs: listing the machine's GPU adapters and choosing a Burn device.
//!
//! GPUs are reached through burn-wgpu (Vulkan, Metal or DX12). Software rasterisers such as Mesa's
//! lavapipe are listed but never chosen automatically: on a machine without a real GPU the run
//! falls back to Burn's `flex` CPU backend with a notice, which is several times faster than a
//! software Vulkan driver. The adapter list is asked of wgpu directly so that the names shown to
//! the user are the driver's own.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, DeviceKind};
use serde::{Deserialize, Serialize};

use crate::remote::{RemoteError, RemoteLink, RemoteTarget};
use crate::support::error_kind::ErrorKind;

/// What kind of hardware an adapter is, as its driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum AdapterKind {
    /// A discrete GPU.
    Discrete,
    /// A GPU integrated with the CPU.
    Integrated,
    /// A virtualised GPU.
    Virtual,
    /// A software rasteriser running on the CPU (lavapipe, llvmpipe, WARP).
    Software,
    /// Anything else the driver reports.
    Other,
}

impl AdapterKind {
    /// Whether the adapter is real graphics hardware worth training on.
    pub fn is_gpu(self) -> bool {
        matches!(
            self,
            AdapterKind::Discrete | AdapterKind::Integrated | AdapterKind::Virtual
        )
    }
}

/// One wgpu adapter, numbered as `--device N` accepts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Adapter {
    /// Position in [`list_adapters`], the number `--device` takes.
    pub index: usize,
    /// The driver's name for the device, e.g. "NVIDIA GeForce RTX 4090".
    pub name: String,
    /// Hardware kind.
    pub kind: AdapterKind,
    /// Graphics API, e.g. "Vulkan".
    pub api: String,
    /// Driver name and version, as reported.
    pub driver: String,
    /// What Burn compiles for it and which fast paths it has; filled by [`describe_compute`]
    /// (which opens the device), `None` until then.
    #[serde(default)]
    pub compute: Option<Compute>,
    /// Burn's selector for this adapter: the n-th adapter of its kind.
    #[serde(skip)]
    selector: Option<DeviceKind>,
}

/// How Burn computes on an adapter once it opens it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Compute {
    /// The shader language kernels are compiled to: `SPIR-V` (Vulkan's native compiler, with
    /// cooperative-matrix kernels), `MSL` (Metal's, with simdgroup matrices) or `WGSL` (the
    /// portable fallback, no matrix units).
    pub compiler: String,
    /// Operand types of the matrix (tensor-core) instructions the kernels may use, e.g.
    /// `f16×f16→f32`; empty when matrix kernels are unavailable.
    pub matrix_units: Vec<String>,
    /// Whether 16-bit float arithmetic is available, which `--precision f16` needs.
    pub f16: bool,
}

impl Compute {
    /// One line for a device list, e.g. `SPIR-V, matrix units f16×f16→f32, f16`.
    pub fn summary(&self) -> String {
        let matrix = if self.matrix_units.is_empty() {
            "no matrix units".to_owned()
        } else {
            format!("matrix units {}", self.matrix_units.join(" "))
        };
        let f16 = if self.f16 { "f16" } else { "no f16" };
        format!("{}, {matrix}, {f16}", self.compiler)
    }
}

/// Opens each adapter's device through Burn's runtime and records what it computes with (see
/// [`Compute`]). Slow (it starts every driver), so meant for device lists, not for every run.
pub fn describe_compute(adapters: Vec<Adapter>) -> Vec<Adapter> {
    adapters
        .into_iter()
        .map(|adapter| {
            let compute = compute_of(adapter.selector.clone());
            Adapter { compute, ..adapter }
        })
        .collect()
}

/// [`Compute`] of the adapter Burn addresses as `selector`; `None` without one, or when the
/// driver fails to open it (which must not take a device list down with it).
fn compute_of(selector: Option<DeviceKind>) -> Option<Compute> {
    let selector = selector?;
    std::panic::catch_unwind(|| open_compute(selector)).ok()
}

/// The CubeCL device of the adapter Burn addresses as `selector`: the same device (and so the
/// same compute client) `Device::wgpu(selector)` trains on, for Spreadout's own kernels.
fn cube_device(selector: DeviceKind) -> cubecl::Device {
    use cubecl::device::{WgpuBackend, WgpuDevice, WgpuDeviceKind};
    let kind = match selector {
        DeviceKind::DiscreteGpu(i) => WgpuDeviceKind::DiscreteGpu(i),
        DeviceKind::IntegratedGpu(i) => WgpuDeviceKind::IntegratedGpu(i),
        DeviceKind::VirtualGpu(i) => WgpuDeviceKind::VirtualGpu(i),
        DeviceKind::Cpu => WgpuDeviceKind::Cpu,
        DeviceKind::DefaultDevice => WgpuDeviceKind::DefaultDevice,
        DeviceKind::Existing(id) => WgpuDeviceKind::Existing(id),
    };
    cubecl::Device::Wgpu(WgpuDevice::new(kind).on(WgpuBackend::Auto))
}

fn open_compute(selector: DeviceKind) -> Compute {
    let client = cube_device(selector.clone()).client();
    let compiler = match client.name() {
        "wgpu<spirv>" => "SPIR-V",
        "wgpu<msl>" => "MSL",
        _ => "WGSL",
    };
    let mut matrix_units: Vec<String> = client
        .properties()
        .features
        .matmul
        .cmma
        .iter()
        .map(|mma| format!("{}×{}→{}", mma.a_type, mma.b_type, mma.cd_type))
        .collect();
    matrix_units.dedup();
    Compute {
        compiler: compiler.to_owned(),
        matrix_units,
        f16: Device::wgpu(selector).supports_dtype(burn::tensor::FloatDType::F16),
    }
}

/// Turns on the persistent kernel caches before any device is opened: autotune results and,
/// on the SPIR-V path, compiled kernels are kept in `dir`, so a second launch's first step
/// skips compilation and tuning. A `cubecl.toml` or `CUBECL_*` variables the user set still
/// apply; only the cache location (when left at its default) and the kernel cache switch are
/// ours. Returns `false` when the configuration was already fixed (a device was opened first).
pub fn configure_kernel_cache(dir: &std::path::Path) -> bool {
    use cubecl::config::cache::CacheConfig;
    use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    config.compilation.cache = true;
    if matches!(config.environment.path, CacheConfig::Target) {
        config.environment.path = CacheConfig::Directory(dir.to_owned());
    }
    CubeClRuntimeConfig::try_set(config)
}

/// Refuses a precision the device cannot compute in, or cannot train in faithfully, with the
/// reason and what to do.
///
/// # Errors
/// [`DeviceError::Precision`] for `f16` on the CPU backend, on an adapter without f16, or on one
/// whose f16 weight gradients are inexact ([`crate::model::half_precision_gradient_error`]).
pub fn check_precision(
    selected: &SelectedDevice,
    precision: crate::model::Precision,
) -> Result<(), DeviceError> {
    use crate::model::Precision;
    match precision {
        Precision::F32 => Ok(()),
        Precision::F16 if !selected.is_wgpu => Err(DeviceError::Precision(format!(
            "f16 precision needs a GPU; {} computes f16 in software, slower than f32: train at f32",
            selected.name
        ))),
        Precision::F16
            if !selected
                .device
                .supports_dtype(burn::tensor::FloatDType::F16) =>
        {
            Err(DeviceError::Precision(format!(
                "{} has no 16-bit float support (its driver does not offer shader-f16): train at f32",
                selected.name
            )))
        }
        Precision::F16 => {
            let error = crate::model::half_precision_gradient_error(&selected.device);
            if error <= crate::model::HALF_GRADIENT_TOLERANCE {
                return Ok(());
            }
            Err(DeviceError::Precision(format!(
                "{}'s f16 convolutions sum their weight gradients in half precision: {:.1} % off \
                 on a test convolution, where summing in f32 stays within {:.0} %, so an f16 run \
                 would train a different model: train at f32",
                selected.name,
                100.0 * error,
                100.0 * crate::model::HALF_GRADIENT_TOLERANCE
            )))
        }
    }
}

/// The graphics APIs wgpu trains through on this platform, in the order CubeCL tries them, in the
/// words a person looks for when installing a driver: Metal on macOS, Vulkan then DX12 on
/// Windows, Vulkan on Linux.
pub const GRAPHICS_APIS: &str = if cfg!(target_vendor = "apple") {
    "Metal"
} else if cfg!(windows) {
    "Vulkan or DX12"
} else {
    "Vulkan"
};

/// The adapters of the graphics API burn-wgpu will use (CubeCL's automatic choice among
/// [`GRAPHICS_APIS`]), in the driver's order. Empty when no driver is installed.
pub fn list_adapters() -> Vec<Adapter> {
    // A broken Vulkan loader can panic inside wgpu; that must mean "no GPU", not a crash.
    std::panic::catch_unwind(enumerate_adapters).unwrap_or_default()
}

fn enumerate_adapters() -> Vec<Adapter> {
    // The API burn-wgpu's automatic choice settles on, asked of CubeCL itself, so the list is what
    // training opens: the first of its chain with a GPU, else the first with a software adapter
    // (Metal alone on macOS, where wgpu also compiles Vulkan for MoltenVK). Under Wine, Vulkan had
    // lavapipe alone and DX12 a GPU; listing Vulkan's made every listed adapter fail to open.
    use burn::backend::wgpu::graphics::{AutoGraphicsApi, GraphicsApi};
    let backend = AutoGraphicsApi::backend();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: backend.into(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    describe_listed(
        pollster::block_on(instance.enumerate_adapters(backend.into()))
            .iter()
            .map(wgpu::Adapter::get_info)
            .collect(),
    )
}

/// One API's adapters as the picker lists them, each with the selector Burn opens it by.
fn describe_listed(infos: Vec<wgpu::AdapterInfo>) -> Vec<Adapter> {
    // Burn addresses an adapter as the n-th of its type, counted separately per type.
    let mut per_kind = [0usize; 5];
    infos
        .into_iter()
        .enumerate()
        .map(|(index, info)| {
            let (kind, slot) = match info.device_type {
                wgpu::DeviceType::DiscreteGpu => (AdapterKind::Discrete, 0),
                wgpu::DeviceType::IntegratedGpu => (AdapterKind::Integrated, 1),
                wgpu::DeviceType::VirtualGpu => (AdapterKind::Virtual, 2),
                wgpu::DeviceType::Cpu => (AdapterKind::Software, 3),
                wgpu::DeviceType::Other => (AdapterKind::Other, 4),
            };
            let n = per_kind[slot];
            per_kind[slot] += 1;
            let selector = match kind {
                AdapterKind::Discrete => Some(DeviceKind::DiscreteGpu(n)),
                AdapterKind::Integrated => Some(DeviceKind::IntegratedGpu(n)),
                AdapterKind::Virtual => Some(DeviceKind::VirtualGpu(n)),
                // Burn has one CPU adapter slot; a second software driver is unreachable.
                AdapterKind::Software => (n == 0).then_some(DeviceKind::Cpu),
                AdapterKind::Other => None,
            };
            Adapter {
                index,
                name: info.name,
                kind,
                api: format!("{:?}", info.backend),
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_owned(),
                compute: None,
                selector,
            }
        })
        .collect()
}

/// What the user asked for with `--device`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// A discrete GPU, else another real GPU (each in the driver's order), else the CPU with a
    /// notice.
    #[default]
    Auto,
    /// A real GPU or an error.
    Gpu,
    /// The CPU backend.
    Cpu,
    /// Adapter number N of [`list_adapters`] (including software rasterisers).
    Adapter(usize),
    /// The device another machine serves with `spreadout serve`.
    Remote(RemoteTarget),
}

impl DeviceChoice {
    /// A served device with `token_file` as its token (when given); any other choice unchanged.
    pub fn with_token_file(self, token_file: Option<std::path::PathBuf>) -> Self {
        match self {
            DeviceChoice::Remote(target) => DeviceChoice::Remote(RemoteTarget {
                token_file: token_file.or(target.token_file),
                ..target
            }),
            other => other,
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(target) = RemoteTarget::parse(text) {
            return Ok(DeviceChoice::Remote(target));
        }
        match text.to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "gpu" => Ok(DeviceChoice::Gpu),
            "cpu" => Ok(DeviceChoice::Cpu),
            number => number.parse().map(DeviceChoice::Adapter).map_err(|_| {
                format!("unknown device '{text}': use auto, gpu, cpu, an adapter number from `spreadout devices`, or a server's address (wss://HOST:PORT, ws://HOST:PORT, iroh://ID@HOST:PORT) for a machine running `spreadout serve`")
            }),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Gpu => f.write_str("gpu"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Adapter(n) => write!(f, "{n}"),
            DeviceChoice::Remote(target) => f.write_str(&target.address),
        }
    }
}

/// Why a requested device cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// `--device gpu` on a machine without one.
    #[error(
        "no GPU adapter found{}; install your GPU's {GRAPHICS_APIS} driver, or train on the CPU",
        software_note(.0)
    )]
    NoGpu(Vec<Adapter>),
    /// `--device N` beyond the list.
    #[error("there is no adapter {index}; `spreadout devices` lists {count}")]
    NoSuchAdapter {
        /// The number asked for.
        index: usize,
        /// How many adapters exist.
        count: usize,
    },
    /// An adapter Burn has no selector for.
    #[error("adapter {0} ({1}) cannot be addressed by burn-wgpu; pick another")]
    Unaddressable(usize, String),
    /// A precision the device cannot compute in.
    #[error("{0}")]
    Precision(String),
    /// The served device of another machine cannot be used.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

impl DeviceError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NoGpu(_) => ErrorKind::NoGpu,
            Self::Precision(_) => ErrorKind::Precision,
            Self::Remote(error) => error.kind(),
            Self::NoSuchAdapter { .. } | Self::Unaddressable(..) => ErrorKind::Device,
        }
    }
}

fn software_note(adapters: &[Adapter]) -> String {
    match adapters.iter().find(|a| a.kind == AdapterKind::Software) {
        Some(adapter) => format!(
            " (only the software rasteriser '{}', adapter {})",
            adapter.name, adapter.index
        ),
        None => String::new(),
    }
}

/// A device ready for training, with the words to show for it.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    /// The Burn device (without autodiff).
    pub device: Device,
    /// e.g. "NVIDIA H100 (Vulkan, discrete GPU)" or "CPU (Burn flex backend)".
    pub name: String,
    /// Whether this is a wgpu adapter rather than the CPU backend.
    pub is_wgpu: bool,
    /// Set when `auto` fell back to the CPU; to be shown to the user.
    pub notice: Option<String>,
    /// Burn's backend behind the device: `wgpu`, `flex`, `ndarray` or `remote`.
    pub backend: &'static str,
    /// The server, for a device another machine serves.
    pub remote: Option<RemoteLink>,
    /// Burn's selector of the wgpu adapter; `None` for the CPU backend.
    selector: Option<DeviceKind>,
}

impl SelectedDevice {
    /// Whether the device runs the steps behind the thread that records them, so that reading a
    /// loss waits on the queue (and, on a served device, a round trip): a GPU or a server, whose
    /// losses are read a window at a time. Their first step also compiles kernels.
    pub fn defers_work(&self) -> bool {
        self.is_wgpu || self.remote.is_some()
    }

    /// Whether the device is a GPU: a wgpu adapter here, or what a server said it serves.
    pub fn is_gpu(&self) -> bool {
        self.is_wgpu || self.remote.as_ref().is_some_and(|link| link.gpu)
    }

    /// The CubeCL device of this wgpu adapter, whose client Spreadout's own kernels launch on
    /// (the client Burn's tensors on it use); `None` for the CPU backend.
    pub fn cube_device(&self) -> Option<cubecl::Device> {
        self.selector.clone().map(cube_device)
    }

    /// What Burn compiles for this device (opens it); `None` for the CPU backend, whose kernels
    /// are native Rust, or when the driver fails to open it.
    pub fn compute(&self) -> Option<Compute> {
        compute_of(self.selector.clone())
    }
}

/// The CPU backend: Burn's `flex`, the fastest CPU backend that builds from crates.io alone
/// (see the README's benchmark table).
pub fn cpu() -> SelectedDevice {
    SelectedDevice {
        device: Device::flex(),
        name: "CPU (Burn flex backend)".to_owned(),
        is_wgpu: false,
        notice: None,
        backend: "flex",
        remote: None,
        selector: None,
    }
}

/// Burn's ndarray CPU backend, built only with the `ndarray` feature for benchmarking against
/// `flex`.
#[cfg(feature = "ndarray")]
pub fn ndarray() -> SelectedDevice {
    SelectedDevice {
        device: Device::ndarray(),
        name: "CPU (Burn ndarray backend)".to_owned(),
        is_wgpu: false,
        notice: None,
        backend: "ndarray",
        remote: None,
        selector: None,
    }
}

/// Resolves `choice` against the adapters of this machine.
pub fn select(choice: DeviceChoice) -> Result<SelectedDevice, DeviceError> {
    match choice {
        // Asking the graphics drivers is slow and noisy; the CPU needs no answer from them.
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Remote(target) => remote(&target),
        _ => select_from(choice, &list_adapters()),
    }
}

/// The device `target` serves, connected and checked (see [`crate::remote::connect`]).
fn remote(target: &RemoteTarget) -> Result<SelectedDevice, DeviceError> {
    let (device, link) = crate::remote::connect(target)?;
    Ok(SelectedDevice {
        device,
        name: format!("{} at {}", link.served, link.address),
        is_wgpu: false,
        notice: None,
        backend: "remote",
        remote: Some(link),
        selector: None,
    })
}

/// [`select`] among adapters already listed by [`list_adapters`] (which is slow: it starts every
/// graphics driver), for callers that also show the list.
///
/// # Errors
/// As [`select`].
pub fn select_from(
    choice: DeviceChoice,
    adapters: &[Adapter],
) -> Result<SelectedDevice, DeviceError> {
    // The fast GPU first: a discrete one, else any other, each in the driver's order. On hybrid
    // laptops Mesa's device-select layer lists the default, usually integrated, GPU first.
    // (`min_by_key` keeps the first of equal keys, so the driver's order breaks ties.)
    let first_gpu = adapters
        .iter()
        .filter(|a| a.kind.is_gpu() && a.selector.is_some())
        .min_by_key(|a| a.kind != AdapterKind::Discrete);
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Remote(target) => remote(&target),
        DeviceChoice::Auto => Ok(match first_gpu {
            Some(adapter) => wgpu_device(adapter)?,
            None => SelectedDevice {
                notice: Some(format!(
                    "no GPU adapter found{}; training on the CPU, which is much slower",
                    software_note(adapters)
                )),
                ..cpu()
            },
        }),
        DeviceChoice::Gpu => match first_gpu {
            Some(adapter) => wgpu_device(adapter),
            None => Err(DeviceError::NoGpu(adapters.to_vec())),
        },
        DeviceChoice::Adapter(index) => match adapters.get(index) {
            Some(adapter) => wgpu_device(adapter),
            None => Err(DeviceError::NoSuchAdapter {
                index,
                count: adapters.len(),
            }),
        },
    }
}

fn wgpu_device(adapter: &Adapter) -> Result<SelectedDevice, DeviceError> {
    let selector = adapter
        .selector
        .clone()
        .ok_or_else(|| DeviceError::Unaddressable(adapter.index, adapter.name.clone()))?;
    let kind = match adapter.kind {
        AdapterKind::Discrete => "discrete GPU",
        AdapterKind::Integrated => "integrated GPU",
        AdapterKind::Virtual => "virtual GPU",
        AdapterKind::Software => "software rasteriser",
        AdapterKind::Other => "other adapter",
    };
    Ok(SelectedDevice {
        device: Device::wgpu(selector.clone()),
        name: format!("{} ({}, {kind})", adapter.name, adapter.api),
        is_wgpu: true,
        notice: None,
        backend: "wgpu",
        remote: None,
        selector: Some(selector),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(index: usize, kind: AdapterKind, selector: Option<DeviceKind>) -> Adapter {
        Adapter {
            index,
            name: format!("adapter {index}"),
            kind,
            api: "Vulkan".into(),
            driver: String::new(),
            compute: None,
            selector,
        }
    }

    #[test]
    fn parses_device_choices() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("GPU".parse(), Ok(DeviceChoice::Gpu));
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("2".parse(), Ok(DeviceChoice::Adapter(2)));
        let error = "tpu".parse::<DeviceChoice>().unwrap_err();
        assert!(error.contains("auto, gpu, cpu"), "{error}");
        assert_eq!(
            "ws://gpu-box:9000".parse(),
            Ok(DeviceChoice::Remote(RemoteTarget {
                address: "ws://gpu-box:9000".into(),
                token_file: None
            }))
        );
    }

    #[test]
    fn auto_skips_software_rasterizers_and_falls_back_to_cpu() {
        let lavapipe = [adapter(0, AdapterKind::Software, Some(DeviceKind::Cpu))];
        let selected = select_from(DeviceChoice::Auto, &lavapipe).unwrap();
        assert!(!selected.is_wgpu);
        let notice = selected.notice.expect("fallback is announced");
        assert!(notice.contains("adapter 0"), "{notice}");
        assert!(matches!(
            select_from(DeviceChoice::Gpu, &lavapipe),
            Err(DeviceError::NoGpu(_))
        ));
        // Naming the software adapter explicitly is allowed (the lavapipe smoke test does).
        assert!(
            select_from(DeviceChoice::Adapter(0), &lavapipe)
                .unwrap()
                .is_wgpu
        );
    }

    #[test]
    fn auto_and_gpu_prefer_a_discrete_gpu_to_an_integrated_one_listed_first() {
        let integrated = |i| {
            adapter(
                i,
                AdapterKind::Integrated,
                Some(DeviceKind::IntegratedGpu(i)),
            )
        };
        let hybrid = [
            integrated(0),
            adapter(1, AdapterKind::Discrete, Some(DeviceKind::DiscreteGpu(0))),
        ];
        for choice in [DeviceChoice::Auto, DeviceChoice::Gpu] {
            let selected = select_from(choice, &hybrid).unwrap();
            assert!(selected.name.contains("adapter 1"), "{}", selected.name);
        }
        // Between equals, the driver's order.
        let two = [integrated(0), integrated(1)];
        let selected = select_from(DeviceChoice::Auto, &two).unwrap();
        assert!(selected.name.contains("adapter 0"), "{}", selected.name);
    }

    #[test]
    fn auto_prefers_the_first_real_gpu() {
        let adapters = [
            adapter(0, AdapterKind::Software, Some(DeviceKind::Cpu)),
            adapter(
                1,
                AdapterKind::Integrated,
                Some(DeviceKind::IntegratedGpu(0)),
            ),
        ];
        let selected = select_from(DeviceChoice::Auto, &adapters).unwrap();
        assert!(selected.is_wgpu);
        assert!(selected.name.contains("adapter 1"), "{}", selected.name);
        assert!(matches!(
            select_from(DeviceChoice::Adapter(5), &adapters),
            Err(DeviceError::NoSuchAdapter { index: 5, count: 2 })
        ));
    }
}
