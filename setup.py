"""Packaging for scalable_agent: IMPALA and V-trace on TensorFlow 2.

The bounds pin the stack this port was tested on (see BUILD_NOTES.md for why each
one is where it is). `pip install -e .[test]` gives everything the tests need;
`[dmlab]` names DeepMind Lab's extra Python needs (the engine itself is built from
source, see BUILD_NOTES.md).
"""
import setuptools

setuptools.setup(
    name='scalable_agent',
    version='0.1.0',
    description='IMPALA (Importance Weighted Actor-Learner Architecture) and '
                'V-trace on TensorFlow 2 and Sonnet 2.',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.11',
    packages=setuptools.find_packages(
        include=['scalable_agent', 'scalable_agent.*', 'atari57', 'dmlab30',
                 'gymnasium_suite']),
    package_data={'atari57': ['*.csv'], 'dmlab30': ['*.csv']},
    install_requires=[
        'tensorflow>=2.21,<2.22',
        # TF 2.21 no longer pulls TensorBoard in; tf.summary needs it.
        'tensorboard>=2.20',
        # TensorFlow Probability imports Keras 2 through tf-keras, whose minor
        # version must equal TensorFlow's.
        'tf-keras>=2.21,<2.22',
        'tensorflow-probability>=0.25,<0.26',
        'dm-sonnet==2.0.2',
        # Nest paths (field names) in the transport (scalable_agent/transport).
        'dm-tree>=0.1.8',
        # AutoresetMode (atari57.environment) arrived in gymnasium 1.1.
        'gymnasium>=1.1,<2',
        'ale-py>=0.12,<0.13',
        'opencv-python-headless>=4.8',
        'numpy>=1.26',
        'matplotlib>=3.8',
        # evaluate's progress bar; report's Markdown and LaTeX tables
        # (tabulate.SEPARATING_LINE arrived in 0.9).
        'tqdm>=4.66',
        'tabulate>=0.9',
    ],
    extras_require={
        # pyyaml: the test that checks deploy/kubernetes's manifests.
        'test': ['pytest>=8', 'pytest-timeout>=2', 'ruff>=0.6', 'pyyaml>=6'],
        # DeepMind Lab's pip package (built from source) imports these.
        'dmlab': ['dm-env>=1.6', 'pillow>=10'],
    },
    entry_points={
        'console_scripts': [
            'scalable_agent=scalable_agent.main:run',
        ],
    },
)
