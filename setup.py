"""Installs the lm-eval start-up hook (a .pth file) with both `pip install .` and `pip install -e .`.

Everything else about the package lives in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_NAME = "lrt_bench_lm_eval.pth"
# One line, run by `site` at start-up. It does nothing if lrt_bench has been removed.
PTH_LINE = 'import importlib.util as u; u.find_spec("lrt_bench") and __import__("lrt_bench.eval._lm_eval_hook")\n'


class BuildPyWithHook(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib, PTH_NAME)
        target.write_text(PTH_LINE)

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib, PTH_NAME))]


cmdclass = {"build_py": BuildPyWithHook}

try:
    from setuptools.command.editable_wheel import editable_wheel

    class EditableWheelWithHook(editable_wheel):
        # Files written into the unpacked wheel's root land in site-packages.
        def _install_namespaces(self, installation_dir, pth_prefix):
            super()._install_namespaces(installation_dir, pth_prefix)
            Path(installation_dir, PTH_NAME).write_text(PTH_LINE)

    cmdclass["editable_wheel"] = EditableWheelWithHook
except ImportError:  # old setuptools without PEP 660 editable wheels
    pass

setup(cmdclass=cmdclass)
