"""vertebra: finding the L1 vertebra in CT, a reproducible companion to the SPIE 2020 paper.

Two methods are compared, as in the paper: a direct 3D U-Net that segments L1 from the whole scan
(`vertebra.direct`) and a Lessmann-style iterative instance segmentation of the whole spine
(`vertebra.instance`). Everything runs on a synthetic CT cohort (`vertebra.phantom`) and on real
scans through `vertebra.io`.
"""
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
