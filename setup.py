"""Build for vmsched: the pure-Python library plus the C matching core compiled by cffi.

The core is optional at run time (vmsched falls back to the Python reference engine with a
warning), but it is always built here: an install that silently lacks it would be 50x slower.
"""

from setuptools import find_packages, setup

setup(
    name="vmsched",
    version="0.1.0",
    description="Scheduling PBS-family batch jobs into virtual-machine domains, fairly across VOs",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # The batch-system adapters live in plugins/ (floor 8 of the house) and install as
    # packages of their own: vmsched_pbs, the `vmsched-pbs` command.
    packages=find_packages(include=["vmsched", "vmsched.*"]) + find_packages("plugins"),
    package_dir={"vmsched_pbs": "plugins/vmsched_pbs"},
    package_data={"vmsched": ["data/*", "examples/*"]},
    # matplotlib draws the simulator's report plots, tqdm its progress bar: both are
    # well-kept and the simulator is the main job, so they are plain requirements.
    install_requires=["attrs>=23.1", "cffi>=1.15", "matplotlib>=3.7", "tqdm>=4.60"],
    extras_require={
        # prometheus-client is in the test extra too: CI tests vmsched-pbs's metrics
        "test": ["pytest>=7", "hypothesis>=6.80", "prometheus-client>=0.17"],
        # vmsched-pbs --metrics-port
        "metrics": ["prometheus-client>=0.17"],
        # pbs_python for vmsched-pbs's pbs_python backend (the cffi backend needs none):
        # the index carries binaries for Python 2.7/3.8/3.10 only; elsewhere build it from source.
        "pbs": ["pbs_python"],
    },
    setup_requires=["cffi>=1.15"],
    cffi_modules=["csrc/build_core.py:ffibuilder"],
    entry_points={"console_scripts": ["vmsched = vmsched.cli:main", "vmsched-pbs = vmsched_pbs.cli:main"]},
    zip_safe=False,
)
