"""From a scan to a labelled spine: prepare → traverse (one or both ways) → order (Eq. 2) → labels.

`label_spine(bundle, image)` runs the traversal of every model in the bundle ("down" = top-down,
"up" = bottom-up). With both (fix (a) of §3.2: a top-down and a bottom-up model combined), the two sets
of instances are merged: a bottom-up vertebra that overlaps a top-down one (Dice ≥ ``same_dice``) is the
same vertebra and their levels are averaged; one that barely overlaps anything (< ``new_overlap`` of its
voxels) is added — typically the vertebrae at the far end of the other traversal. The instances are then
sorted top to bottom and labelled by `ordering.most_likely_ordering` (Eq. 2); a vertebra that the completeness head
(fix (c)) calls partial keeps its mask but does not vote on the ordering. A spine holds at most 25
vertebrae (C1..L6): when the walks found more pieces (two walks that ran past the spine), only the 25
largest are labelled and the rest leave the mask.

With a density floor in the bundle (``mask_floor_hu``, beyond the paper, chosen on the validation
walks), the walk's pieces first lose the voxels at or below it (`restrict_to_bone`): the quick
networks' masks spread into the soft tissue round the bone and across a disc into the next vertebra.

With a context network in the bundle (fix (d), beyond the paper; `vertebra.instance.context`), every
piece is looked at once more, at its centroid, before the ordering: its level from the wide view
replaces the instance head's, and a piece whose centre it does not call a vertebra (sacrum, pelvis,
ribs, where the walk ran on past the spine) leaves the labelling and the mask. The same network also
picks where the walk starts (`context_judge`): of the first-box candidates, the one it finds most likely
on a vertebra, so that a walk does not start on a rib or the sternum because the instance network
segments more of it.

With fix (e) (the bundle's ``ordering`` rule "monotone", `vertebra.instance.ordering`) the labels only
have to descend the spine: a level may be skipped, and pieces that share one are one vertebra.

The labelled mask comes back on the input scan's grid (nearest neighbour, world space), with, per
vertebra, its label, name, centroid (world mm, x y z), craniocaudal range (world z, mm) and the L1
decision's confidence.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..image import Volume
from ..labels import L1, name
from .levels import MAX_LEVEL
from .context import ContextModel
from .ordering import Ordering, OrderingConfig
from .scan import PreparedScan, back_to_input, prepare_scan
from .traversal import SpineJudge, TraversalResult, traverse
from .weights import InstanceBundle


@dataclass
class SpineLabelling:
    """The result of `label_spine`."""

    prepared: PreparedScan
    labels_prepared: np.ndarray          # (z, y, x) VerSe labels on the prepared (isotropic) grid
    mask: Volume | None                  # the same on the input grid (None when not requested)
    levels: list[dict]                   # top to bottom: label, name, centroid_mm, z_range_mm, ...
    ordering: Ordering
    traversals: list[TraversalResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def l1(self) -> dict | None:
        """The entry of the vertebra labelled L1, or None when the labelling holds no L1."""
        return next((v for v in self.levels if v["label"] == L1), None)

    @property
    def centroids_mm(self) -> dict[int, tuple]:
        return {v["label"]: tuple(v["centroid_mm"]) for v in self.levels}

    @property
    def passes(self) -> int:
        return sum(t.passes for t in self.traversals)

    @property
    def network_seconds(self) -> float:
        return sum(t.network_seconds for t in self.traversals)


def merge_traversals(down: TraversalResult, up: TraversalResult, same_dice: float = 0.3,
                     new_overlap: float = 0.2) -> tuple[np.ndarray, list[dict]]:
    """Combine a top-down and a bottom-up traversal into one instance map and per-instance evidence."""
    merged = down.instances.copy()
    evidence = [{"levels": [v.level], "completeness": [v.completeness]} for v in down.vertebrae]
    for v in up.vertebrae:
        region = up.instances == v.index + 1
        overlap = np.bincount(merged[region].ravel(), minlength=len(evidence) + 1)
        best = int(np.argmax(overlap[1:])) + 1 if len(overlap) > 1 else 0
        if best and overlap[best] > 0:
            size_best = int((merged == best).sum())
            if 2 * overlap[best] / (region.sum() + size_best) >= same_dice:
                evidence[best - 1]["levels"].append(v.level)
                evidence[best - 1]["completeness"].append(v.completeness)
                continue
        if overlap[1:].sum() < new_overlap * region.sum():
            merged[region & (merged == 0)] = len(evidence) + 1
            evidence.append({"levels": [v.level], "completeness": [v.completeness]})
    return merged, evidence


def _present(instances: np.ndarray, n: int) -> tuple[list[int], np.ndarray]:
    """The instance ids 1..n that have voxels, and the voxel count of every id (index = id)."""
    size = np.bincount(instances.ravel(), minlength=n + 1)
    return [i for i in range(1, n + 1) if size[i]], size


def _centroids(instances: np.ndarray, ids: list[int]) -> dict[int, tuple]:
    """{id: centroid (z, y, x) in voxels} of the given instance ids."""
    return dict(zip(ids, ndimage.center_of_mass(np.ones(instances.shape, np.uint8), instances, ids))) if ids else {}


def restrict_to_bone(instances: np.ndarray, image_hu: np.ndarray, floor_hu: float) -> np.ndarray:
    """Each piece cut to the voxels denser than ``floor_hu`` (HU), then to its largest connected part; a
    part cut off joins the piece it touches most (a slab of the next vertebra's endplate that a mask
    reached across a disc for), or leaves the mask when it touches none. Returns a new instance map."""
    dense = np.where(image_hu > floor_hu, instances, 0).astype(instances.dtype)
    kept = np.zeros_like(dense)
    for i, box in enumerate(ndimage.find_objects(dense), 1):
        if box is None:
            continue
        parts, n = ndimage.label(dense[box] == i)
        if n:
            kept[box][parts == 1 + int(np.argmax(np.bincount(parts.ravel())[1:]))] = i
    orphans, _ = ndimage.label((dense > 0) & (kept == 0))
    for j, box in enumerate(ndimage.find_objects(orphans), 1):
        grown = tuple(slice(max(0, b.start - 1), b.stop + 1) for b in box)
        part = orphans[grown] == j
        touching = kept[grown][ndimage.binary_dilation(part) & ~part]
        touching = touching[touching > 0]
        if len(touching):
            kept[grown][part] = np.bincount(touching).argmax()
    return kept


def context_judge(context: ContextModel, context_scan: PreparedScan, prepared: PreparedScan) -> SpineJudge:
    """Fix (d)'s ``on_spine`` for the traversal: the context network's probability that each voxel
    (z, y, x) of ``prepared`` lies on a vertebra, read on ``context_scan`` (the same scan on the context
    grid, `ContextModel.prepare`); 0 below its ``min_vertebra_probability``, the threshold at which the
    labelling too calls a piece a vertebra."""
    grid = prepared.volume(prepared.image_hu)

    def on_spine(centres_zyx: np.ndarray) -> np.ndarray:
        probability = context.read(context_scan, grid.index_to_world(np.asarray(centres_zyx, float)))[1]
        return np.where(probability >= context.config.min_vertebra_probability, probability, 0.0)

    return on_spine


def apply_context(bundle: InstanceBundle, image: Volume, prepared: PreparedScan, instances: np.ndarray,
                  evidence: list[dict], context_scan: PreparedScan | None = None) -> tuple[np.ndarray, list[dict]]:
    """Fix (d): each piece's level from the context network, and the pieces off the spine removed.

    ``context_scan``: ``image`` on the context grid, when the caller has it already. Returns a new
    instance map and evidence; each entry keeps the instance head's levels under ``head_levels`` and
    gains ``vertebra_probability``."""
    present, _ = _present(instances, len(evidence))
    if not present:
        return instances, evidence
    centroids = _centroids(instances, present)
    world = prepared.volume(instances).index_to_world([centroids[i] for i in present])
    context_scan = bundle.context.prepare(image) if context_scan is None else context_scan
    levels, probability = bundle.context.read(context_scan, world)
    evidence = [dict(e) for e in evidence]
    off_spine = []
    for i, level, p in zip(present, levels, probability):
        entry = evidence[i - 1]
        entry.update({"head_levels": entry["levels"], "levels": [float(level)], "vertebra_probability": float(p)})
        if p < bundle.context.config.min_vertebra_probability:
            off_spine.append(i)
    if off_spine:
        instances = np.where(np.isin(instances, off_spine), 0, instances).astype(instances.dtype)
    return instances, evidence


def _relabel(instances: np.ndarray, evidence: list[dict], prepared: PreparedScan,
             rule: OrderingConfig = OrderingConfig()) -> tuple:
    """Sort instances top to bottom (z up), label them by ``rule`` (Eq. 2 by default) and paint the
    VerSe label map. Pieces given the same level (fix (e): one vertebra the walk cut in two) become one
    vertebra: one label in the map and one entry, over the union of their voxels."""
    ids = [i + 1 for i in range(len(evidence))]
    present, size = _present(instances, len(evidence))
    centroids = _centroids(instances, present)
    if len(present) > MAX_LEVEL:        # a spine holds at most 25 vertebrae (C1..L6): keep the largest pieces
        present = sorted(sorted(present, key=lambda i: -size[i])[:MAX_LEVEL])
    top_first = sorted(present, key=lambda i: -centroids[i][0])
    levels = [float(np.mean(evidence[i - 1]["levels"])) for i in top_first]
    comp = [[c for c in evidence[i - 1]["completeness"] if c is not None] for i in top_first]
    weights = [0.0 if c and np.mean(c) < 0.5 else 1.0 for c in comp]
    ordering = rule.order(levels, weights=weights if any(weights) else None)
    lut = np.zeros(max(ids, default=0) + 1, np.uint8)
    entries = []
    spacing = prepared.spacing_mm
    grid = prepared.volume(instances)
    boxes = ndimage.find_objects(instances, max_label=len(evidence))
    groups: dict[int, list[int]] = {}                      # label → positions in top_first
    for k, inst in enumerate(top_first):
        lut[inst] = ordering.labels[k]
        groups.setdefault(int(ordering.labels[k]), []).append(k)
    for label, members in groups.items():
        insts = [top_first[k] for k in members]
        voxels = np.array([size[i] for i in insts], float)
        centroid = (np.asarray(centroids[insts[0]]) if len(insts) == 1 else
                    np.average([centroids[i] for i in insts], axis=0, weights=voxels))
        z_first = min(boxes[i - 1][0].start for i in insts)
        z_last = max(boxes[i - 1][0].stop for i in insts) - 1
        world = grid.index_to_world([centroid])[0]
        z_ends = grid.index_to_world([[z_first - 0.5, *centroid[1:]], [z_last + 0.5, *centroid[1:]]])[:, 2]
        member_comp = [c for k in members for c in comp[k]]
        entries.append({"label": label, "name": name(label),
                        "level_predicted": round(float(np.mean([levels[k] for k in members])), 3),
                        "centroid_mm": [round(float(c), 2) for c in world],
                        "z_range_mm": [round(float(z_ends.min()), 2), round(float(z_ends.max()), 2)],
                        "completeness": round(float(np.mean(member_comp)), 3) if member_comp else None,
                        "volume_cm3": round(float(voxels.sum()) * spacing ** 3 / 1000, 2)})
        if len(insts) > 1:
            entries[-1]["pieces"] = len(insts)
        if "vertebra_probability" in evidence[insts[0] - 1]:          # fix (d)
            entries[-1].update({
                "level_head": round(float(np.mean([h for i in insts for h in evidence[i - 1]["head_levels"]])), 3),
                "vertebra_probability": round(float(np.mean([evidence[i - 1]["vertebra_probability"]
                                                             for i in insts])), 3)})
    return lut[instances], entries, ordering


def walk_spine(models: dict, prepared: PreparedScan, traversal,
               on_spine: SpineJudge | None = None) -> tuple[list[TraversalResult], np.ndarray, list[dict]]:
    """The walk(s) of ``models`` ({direction: model}) over a prepared scan: the traversals, one instance
    map (two walks merged by `merge_traversals`) and each piece's evidence (levels, completeness).
    ``on_spine``: fix (d)'s judge of the first box (`context_judge`)."""
    runs = {d: traverse(m, prepared, traversal, d, on_spine) for d, m in sorted(models.items())}
    if len(runs) == 2:
        instances, evidence = merge_traversals(runs["down"], runs["up"])
    else:
        (only,) = runs.values()
        instances = only.instances
        evidence = [{"levels": [v.level], "completeness": [v.completeness]} for v in only.vertebrae]
    return list(runs.values()), instances, evidence


@dataclass
class SpineWalk:
    """A scan walked by a bundle's model(s), before its pieces are cut, judged and labelled
    (`walk_scan`; `label_walk` labels it, once or with several bundles that share the walk)."""

    prepared: PreparedScan
    runs: list[TraversalResult]
    instances: np.ndarray                 # (z, y, x) piece ids on the prepared grid, 0 = none
    evidence: list[dict]                  # per piece (id − 1): levels, completeness
    context_scan: PreparedScan | None     # the scan on the context network's grid (fix (d)), else None
    started: float                        # `time.perf_counter()` when the walk began


def walk_scan(bundle: InstanceBundle, image: Volume) -> SpineWalk:
    """Prepare ``image`` (any orientation; HU) and walk it with the bundle's model(s); with a context
    network (fix (d)) the walk starts where that network sees a vertebra (`context_judge`)."""
    started = time.perf_counter()
    prepared = prepare_scan(image, spacing_mm=bundle.spacing_mm)
    context_scan, on_spine = None, None
    if bundle.context is not None:                      # fix (d): prepared once, for the first box and the levels
        context_scan = bundle.context.prepare(image)
        on_spine = context_judge(bundle.context, context_scan, prepared)
    runs, instances, evidence = walk_spine(bundle.models, prepared, bundle.traversal, on_spine)
    return SpineWalk(prepared, runs, instances, evidence, context_scan, started)


def label_walk(bundle: InstanceBundle, image: Volume, walk: SpineWalk, map_back: bool = True) -> SpineLabelling:
    """Label the pieces of a walk (`walk_scan`) with the bundle's density floor, context network and
    ordering rule; ``map_back``: also the labelled mask on ``image``'s grid."""
    prepared, instances, evidence = walk.prepared, walk.instances, walk.evidence
    if bundle.mask_floor_hu is not None:
        instances = restrict_to_bone(instances, prepared.image_hu, bundle.mask_floor_hu)
    if bundle.context is not None:
        instances, evidence = apply_context(bundle, image, prepared, instances, evidence, walk.context_scan)
    labels, entries, ordering = _relabel(instances, evidence, prepared, bundle.ordering)
    l1_conf = {"log_likelihood_margin": round(ordering.confidence, 3) if np.isfinite(ordering.confidence) else None,
               "posterior": round(ordering.posterior, 4)}
    for e in entries:
        e["confidence"] = l1_conf if e["label"] == L1 else None
    mask = back_to_input(labels, prepared, image) if map_back else None
    return SpineLabelling(prepared, labels, mask, entries, ordering, walk.runs, time.perf_counter() - walk.started)


def label_spine(bundle: InstanceBundle, image: Volume, map_back: bool = True) -> SpineLabelling:
    """Label every vertebra of ``image`` (any orientation; HU) with the bundle's model(s)."""
    return label_walk(bundle, image, walk_scan(bundle, image), map_back)
