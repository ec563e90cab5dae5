"""The Ray head's Serve ingress settings: two local clusters must not share HAProxy's files
or ports (Serve's defaults are fixed /tmp paths and fixed ports)."""

from conveyor.stack import serve_ingress_env
from pipelines.settings import ConveyorSettings


def test_haproxy_files_and_ports_are_the_clusters_own(tmp_path):
    settings = ConveyorSettings(
        serve_haproxy_stats_port=18404,
        serve_haproxy_metrics_port=19101,
        serve_fallback_proxy_http_port=18500,
        serve_fallback_proxy_grpc_port=19500,
        serve_replica_http_port_min=31000,
    )
    env = serve_ingress_env(settings, tmp_path)
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    paths = [v for k, v in env.items() if k.endswith(("_LOC", "_PATH", "_BASE", "_FILE"))]
    assert len(paths) == 5
    assert all(p.startswith(str(tmp_path / "haproxy")) for p in paths)
    ports = {
        k: int(v)
        for k, v in env.items()
        if k.endswith("_PORT") and not k.startswith("RAY_SERVE_DI")
    }
    assert sorted(ports.values()) == [18404, 18500, 19101, 19500]
    assert env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] == "31000"
    assert env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] == "31999"
    assert env["RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT"] == "41000"


def test_the_python_proxy_needs_no_extra_environment(tmp_path):
    assert serve_ingress_env(ConveyorSettings(serve_ingress="proxy"), tmp_path) == {}
    assert not (tmp_path / "haproxy").exists()
