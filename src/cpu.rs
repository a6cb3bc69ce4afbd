//! What the machine offers to compute with: the default thread count.
//!
//! Matmuls are limited by the arithmetic units, which two hyper-threads of one core share, so the
//! default is one thread per physical core (as llama.cpp's `cpu_get_num_math` does), never more
//! than the CPUs this process may run on (affinity masks, container quotas).

use std::collections::BTreeSet;
use std::path::Path;

/// One thread per physical core the process may use; at least 1.
pub fn default_threads() -> usize {
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    match physical_cores(Path::new("/sys/devices/system/cpu")) {
        Some(cores) => cores.clamp(1, available),
        None => available,
    }
}

/// Distinct cores among the online CPUs, from Linux's sysfs topology (`None` elsewhere).
///
/// CPUs that share a core list the same `thread_siblings_list`, so counting distinct lists
/// counts cores.
fn physical_cores(sysfs: &Path) -> Option<usize> {
    let mut cores = BTreeSet::new();
    for entry in std::fs::read_dir(sysfs).ok()?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(id) = name.strip_prefix("cpu") else {
            continue;
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let siblings = entry.path().join("topology/thread_siblings_list");
        if let Ok(list) = std::fs::read_to_string(siblings) {
            cores.insert(list.trim().to_string());
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sysfs(siblings: &[&str]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "hearth-cpu-{}-{}",
            std::process::id(),
            siblings.join("_").replace(',', "c")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (i, s) in siblings.iter().enumerate() {
            let topo = dir.join(format!("cpu{i}/topology"));
            std::fs::create_dir_all(&topo).unwrap();
            std::fs::write(topo.join("thread_siblings_list"), format!("{s}\n")).unwrap();
        }
        std::fs::create_dir_all(dir.join("cpufreq")).unwrap();
        dir
    }

    #[test]
    fn hyper_threads_count_once() {
        let dir = fake_sysfs(&["0,2", "1,3", "0,2", "1,3"]);
        assert_eq!(physical_cores(&dir), Some(2));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn one_thread_per_core_machines() {
        let dir = fake_sysfs(&["0", "1", "2"]);
        assert_eq!(physical_cores(&dir), Some(3));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_topology_means_unknown() {
        assert_eq!(physical_cores(Path::new("/nonexistent/hearth")), None);
        assert!(default_threads() >= 1);
    }
}
