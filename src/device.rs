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

/// What kind of hardware an adapter is, as its driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Burn's selector for this adapter: the n-th adapter of its kind.
    #[serde(skip)]
    selector: Option<DeviceKind>,
}

/// The adapters of the graphics API burn-wgpu will use (the first of Vulkan, Metal, DX12 that has
/// any), in the driver's order. Empty when no driver is installed.
pub fn list_adapters() -> Vec<Adapter> {
    // A broken Vulkan loader can panic inside wgpu; that must mean "no GPU", not a crash.
    std::panic::catch_unwind(enumerate_adapters).unwrap_or_default()
}

fn enumerate_adapters() -> Vec<Adapter> {
    for backend in [
        wgpu::Backend::Vulkan,
        wgpu::Backend::Metal,
        wgpu::Backend::Dx12,
    ] {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: backend.into(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let infos: Vec<wgpu::AdapterInfo> =
            pollster::block_on(instance.enumerate_adapters(backend.into()))
                .iter()
                .map(wgpu::Adapter::get_info)
                .collect();
        if infos.is_empty() {
            continue;
        }
        // Burn addresses an adapter as the n-th of its type, counted separately per type.
        let mut per_kind = [0usize; 5];
        return infos
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
                    selector,
                }
            })
            .collect();
    }
    Vec::new()
}

/// What the user asked for with `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// The first real GPU, else the CPU with a notice.
    #[default]
    Auto,
    /// A real GPU or an error.
    Gpu,
    /// The CPU backend.
    Cpu,
    /// Adapter number N of [`list_adapters`] (including software rasterisers).
    Adapter(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "gpu" => Ok(DeviceChoice::Gpu),
            "cpu" => Ok(DeviceChoice::Cpu),
            number => number.parse().map(DeviceChoice::Adapter).map_err(|_| {
                format!("unknown device '{text}': use auto, gpu, cpu or an adapter number from `spreadout devices`")
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
        }
    }
}

/// Why a requested device cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// `--device gpu` on a machine without one.
    #[error(
        "no GPU adapter found{}; install your GPU's Vulkan/Metal/DX12 driver, or use --device cpu",
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
}

/// The CPU backend: Burn's `flex`, the fastest CPU backend that builds from crates.io alone
/// (see the README's benchmark table).
pub fn cpu() -> SelectedDevice {
    SelectedDevice {
        device: Device::flex(),
        name: "CPU (Burn flex backend)".to_owned(),
        is_wgpu: false,
        notice: None,
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
    }
}

/// Resolves `choice` against the adapters of this machine.
pub fn select(choice: DeviceChoice) -> Result<SelectedDevice, DeviceError> {
    match choice {
        // Asking the graphics drivers is slow and noisy; the CPU needs no answer from them.
        DeviceChoice::Cpu => Ok(cpu()),
        _ => select_from(choice, &list_adapters()),
    }
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
    let first_gpu = adapters
        .iter()
        .find(|a| a.kind.is_gpu() && a.selector.is_some());
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
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
        device: Device::wgpu(selector),
        name: format!("{} ({}, {kind})", adapter.name, adapter.api),
        is_wgpu: true,
        notice: None,
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
    }

    #[test]
    fn auto_skips_software_rasterisers_and_falls_back_to_cpu() {
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
