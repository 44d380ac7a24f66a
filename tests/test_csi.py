"""CSI on latents whose answer is known, and the change-rate early-stopping rule."""
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from inform.detect.csi import auto_eps, cluster_separation_index
from inform.detect.early_stop import ChangeRateStop


def blob(rng, center, n, std=0.01):
    return np.asarray(center, dtype=np.float64) + std * rng.standard_normal((n, len(center)))


def brute_csi(rlhf, labels, sft):
    total = 0.0
    for c in set(labels) - {-1}:
        pts = rlhf[labels == c]
        centroid = pts.mean(axis=0)
        total += len(pts) * np.sqrt(((sft - centroid) ** 2).sum(axis=1)).min()
    return total


def test_clusters_at_chosen_distances_give_sum_of_size_times_distance():
    rng = np.random.default_rng(0)
    sft = rng.standard_normal((300, 8))
    a = blob(rng, [10.0] + [0.0] * 7, 30)
    b = blob(rng, [0.0, -6.0] + [0.0] * 6, 20)
    rlhf = np.concatenate([a, b])
    res = cluster_separation_index(rlhf, sft, eps=0.5, min_samples=5)
    assert res.n_clusters == 2 and res.noise_frac == 0.0 and sorted(res.sizes) == [20, 30]
    # exactly sum |C_i| * min_j ||c_i - s_j||, the centroids being the clusters' means
    expected = 30 * np.linalg.norm(sft - a.mean(0), axis=1).min() + 20 * np.linalg.norm(sft - b.mean(0), axis=1).min()
    assert res.value == pytest.approx(expected, rel=1e-12)
    # and d_i is about the distance to the cloud's edge (a 10-away cluster is ~7-9 from the nearest SFT point)
    assert 6.0 < max(res.distances) < 10.0


def test_latents_inside_the_sft_cloud_give_csi_near_zero():
    rng = np.random.default_rng(1)
    sft = rng.standard_normal((400, 2))
    inside = rng.standard_normal((400, 2))
    res_in = cluster_separation_index(inside, sft)  # eps from the SFT latents
    res_out = cluster_separation_index(inside + 10.0, sft, eps=res_in.eps)
    assert res_in.n_clusters >= 1 and res_out.n_clusters >= 1
    assert res_in.value == pytest.approx(brute_csi(inside, res_in.labels, sft))
    assert res_in.value < 0.01 * res_out.value  # near 0 against the same samples moved away
    assert res_in.value / len(inside) < 0.1  # per sample, a tenth of the cloud's unit scale


def test_all_noise_gives_zero():
    rng = np.random.default_rng(2)
    sft = rng.standard_normal((100, 3))
    spread = np.stack([np.full(3, 10.0 * i) for i in range(20)])  # 20 points, 17 apart
    res = cluster_separation_index(spread, sft, eps=0.5, min_samples=5)
    assert res.value == 0.0 and res.n_clusters == 0 and res.noise_frac == 1.0


def test_hdbscan_and_dbscan_agree_on_well_separated_clusters():
    rng = np.random.default_rng(3)
    sft = rng.standard_normal((200, 4))
    rlhf = np.concatenate([blob(rng, [8, 0, 0, 0], 40, 0.05), blob(rng, [0, 8, 0, 0], 40, 0.05), blob(rng, [0, 0, 0, -8], 40, 0.05)])
    db = cluster_separation_index(rlhf, sft, method="dbscan", eps=0.5, min_samples=5)
    hd = cluster_separation_index(rlhf, sft, method="hdbscan", min_samples=5, min_cluster_size=5)
    assert db.n_clusters == hd.n_clusters == 3
    assert adjusted_rand_score(db.labels, hd.labels) == 1.0
    assert db.value == pytest.approx(hd.value, rel=1e-12)


def test_auto_eps_is_the_median_kth_neighbour_distance():
    pts = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
    # 2nd-nearest neighbour distances: 0->3, 1->2, 3->3, 6->4, 10->7; median 3
    assert auto_eps(pts, min_samples=2) == pytest.approx(3.0)
    assert auto_eps(pts, min_samples=2, scale=0.5) == pytest.approx(1.5)


def test_early_stop_fires_at_the_right_step():
    stop = ChangeRateStop(e_max=10.0)
    series = [1.0, 1.1, 1.3, 1.4, 5.0, 5.1]
    # diffs 0.1, 0.2, 0.1, 3.6: e_2 = 2, e_3 = 0.1/0.15 = 0.67, e_4 = 3.6/(0.4/3) = 27 > 10
    fired = [stop.update(v) for v in series]
    assert fired == [False, False, False, False, True, True]
    assert stop.fired_at == 4
    assert stop.diffs[:3] == pytest.approx([0.1, 0.2, 0.1])


def test_early_stop_never_fires_before_two_differences():
    stop = ChangeRateStop(e_max=10.0)
    assert not stop.update(1.0) and not stop.update(1000.0)  # one difference: no ratio yet
    assert stop.ratio() is None and stop.fired_at is None
    flat = ChangeRateStop(e_max=10.0)
    assert [flat.update(v) for v in (2.0, 2.0, 2.0, 9.0)] == [False, False, False, True]  # from a flat series: inf
    calm = ChangeRateStop(e_max=10.0)
    assert not any(calm.update(v) for v in np.linspace(0, 5, 30))
    again = ChangeRateStop()
    again.load_state_dict(stop.state_dict())
    assert again.values == stop.values and again.fired_at is None
