"""skinseg: skin-lesion segmentation with the improved UNet.

Importing the package is cheap (no torch); the library lives in its submodules.
"""

__version__ = "0.2.0"
