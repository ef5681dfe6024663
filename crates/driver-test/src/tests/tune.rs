//! schedinfo, memtune, cpu-stats, domhostname and domtime on the test
//! driver, checked against libvirt 9.0's test driver.

use migrated_core::tune::{cpu_stats, memory, GuestTime, PerCpuStats};
use migrated_core::typed_params::{TypedParams, TypedValue};

use super::*;

async fn defined_and_started(drv: &TestDriver, name: &str) -> DomainRef {
    let dom = drv
        .define_xml(&xml(name, Uuid::new_v4()), 0)
        .await
        .expect("define");
    drv.create(&dom, 0).await.expect("start")
}

fn ullong(params: &TypedParams, key: &str) -> u64 {
    params.get_ullong(key).expect("ullong").expect(key)
}

#[tokio::test]
async fn scheduler_is_fair_with_a_fixed_weight_and_refuses_flags_and_bad_params() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let dom = defined_and_started(&drv, "sched").await;
    assert_eq!(
        drv.scheduler_type(&dom).await.expect("type"),
        ("fair".into(), 1)
    );
    let weight = TypedParams::new().with("weight", TypedValue::UInt(10));
    drv.set_scheduler_parameters(&dom, &weight, 0)
        .await
        .expect("set");
    let params = drv.scheduler_parameters(&dom, 0).await.expect("get");
    assert_eq!(params.get_uint("weight").expect("uint"), Some(50));
    let e = drv
        .scheduler_parameters(&dom, flags::affect::LIVE)
        .await
        .expect_err("flags");
    assert_eq!(e.code(), ErrorCode::InvalidArg);
    assert!(
        e.to_string()
            .contains("testDomainGetSchedulerParametersFlags"),
        "{e}"
    );
    let unknown = TypedParams::new().with("cap", TypedValue::UInt(10));
    let e = drv
        .set_scheduler_parameters(&dom, &unknown, 0)
        .await
        .expect_err("unknown");
    assert_eq!(e.code(), ErrorCode::ArgumentUnsupported);
    let typed = TypedParams::new().with("weight", TypedValue::ULLong(10));
    let e = drv
        .set_scheduler_parameters(&dom, &typed, 0)
        .await
        .expect_err("type");
    assert_eq!(e.code(), ErrorCode::InvalidArg);
}

#[tokio::test]
async fn memory_limits_go_to_the_chosen_definition_and_the_stored_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dom = {
        let drv = driver(dir.path());
        let dom = defined_and_started(&drv, "mem").await;
        let all = drv.memory_parameters(&dom, 0).await.expect("get");
        assert_eq!(all.len(), 3);
        assert_eq!(ullong(&all, memory::HARD_LIMIT), memory::UNLIMITED);
        let live = TypedParams::new().with(memory::SOFT_LIMIT, TypedValue::ULLong(2048));
        drv.set_memory_parameters(&dom, &live, 0)
            .await
            .expect("live");
        let config = TypedParams::new().with(memory::HARD_LIMIT, TypedValue::ULLong(4096));
        drv.set_memory_parameters(&dom, &config, flags::affect::CONFIG)
            .await
            .expect("config");
        let now = drv.memory_parameters(&dom, 0).await.expect("live view");
        assert_eq!(ullong(&now, memory::SOFT_LIMIT), 2048);
        assert_eq!(ullong(&now, memory::HARD_LIMIT), memory::UNLIMITED);
        let cfg = drv
            .memory_parameters(&dom, flags::affect::CONFIG)
            .await
            .expect("config view");
        assert_eq!(ullong(&cfg, memory::HARD_LIMIT), 4096);
        assert_eq!(ullong(&cfg, memory::SOFT_LIMIT), memory::UNLIMITED);
        let live_xml = drv.get_xml_desc(&dom, 0).await.expect("xml");
        assert!(
            live_xml.contains("<soft_limit unit='KiB'>2048</soft_limit>"),
            "{live_xml}"
        );
        // The swap limit may not fall under the hard limit, nor the reverse.
        let swap = TypedParams::new()
            .with(memory::HARD_LIMIT, TypedValue::ULLong(8192))
            .with(memory::SWAP_HARD_LIMIT, TypedValue::ULLong(4096));
        let e = drv
            .set_memory_parameters(&dom, &swap, 0)
            .await
            .expect_err("swap");
        assert_eq!(e.code(), ErrorCode::InvalidArg);
        assert!(e.to_string().contains("swap_hard_limit"), "{e}");
        let wrong = TypedParams::new().with(memory::HARD_LIMIT, TypedValue::UInt(1));
        let e = drv
            .set_memory_parameters(&dom, &wrong, 0)
            .await
            .expect_err("type");
        assert_eq!(e.code(), ErrorCode::InvalidArg);
        drv.destroy(&dom, 0).await.expect("destroy");
        let e = drv
            .set_memory_parameters(&dom, &live, flags::affect::LIVE)
            .await
            .expect_err("live on shut off");
        assert_invalid(e, "domain is not running");
        dom
    };
    // The config change is on disk: a new driver over the same state reads it.
    let drv = driver(dir.path());
    let cfg = drv.memory_parameters(&dom, 0).await.expect("after restart");
    assert_eq!(ullong(&cfg, memory::HARD_LIMIT), 4096);
}

#[tokio::test]
async fn cpu_stats_hostname_and_time_need_a_running_guest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let dom = defined_and_started(&drv, "clock").await;
    let stats = drv.cpu_stats(&dom, 0).await.expect("stats");
    assert_eq!(ullong(&stats.total, cpu_stats::CPU_TIME), 48_772_617_035);
    let PerCpuStats::Known(per_cpu) = &stats.per_cpu else {
        panic!("the test driver knows its split: {:?}", stats.per_cpu);
    };
    assert_eq!(per_cpu.len(), 2);
    assert_eq!(ullong(&per_cpu[1], cpu_stats::CPU_TIME), 24_386_308_518);
    assert_eq!(
        drv.guest_hostname(&dom, 0).await.expect("hostname"),
        "clockhost"
    );
    let boot = drv.guest_time(&dom, 0).await.expect("time");
    assert_eq!(boot.seconds, 627_319_920);
    let set = GuestTime {
        seconds: 12_345,
        nseconds: 6,
    };
    drv.set_guest_time(&dom, set, 0).await.expect("set time");
    assert_eq!(drv.guest_time(&dom, 0).await.expect("time"), set);
    // libvirt's test driver reports a command in flight for such a clock.
    let control = drv.control_info(&dom).await.expect("control");
    assert_eq!(control.state, migrated_core::domain::ControlState::Occupied);
    assert_eq!(control.state_time_ms, 2_345);
    drv.suspend(&dom).await.expect("suspend");
    assert_invalid(
        drv.guest_time(&dom, 0).await.expect_err("paused"),
        "not running",
    );
    drv.destroy(&dom, 0).await.expect("destroy");
    assert_invalid(
        drv.cpu_stats(&dom, 0).await.expect_err("off"),
        "not running",
    );
    assert_invalid(
        drv.guest_hostname(&dom, 0).await.expect_err("off"),
        "not running",
    );
    let e = drv.guest_hostname(&dom, 2).await.expect_err("flags");
    assert_eq!(e.code(), ErrorCode::InvalidArg);
}
