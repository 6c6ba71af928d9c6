"""The coupon-scoring pipeline as a package, so that runners with remote
workers (Flink, Dataflow) can install it with ``--setup_file ./setup.py``.

The local stand-ins (``standins/``) and the tests are not part of it.
"""

import setuptools

with open('requirements.txt') as requirements:
    RUNTIME = requirements.read().split('# Tests only')[0]
PINNED = [
    line.strip() for line in RUNTIME.splitlines() if line.strip() and not line.startswith('#')
]

setuptools.setup(
    name='coupon-scoring',
    version='0.1.0',
    description='Real-time coupon scoring for physical stores: an Apache Beam streaming pipeline',
    python_requires='>=3.11',
    packages=[
        'pipeline',
        'pipeline.flink',
        'pipeline.replay',
        'pipeline.xlang',
        'transforms',
        'transforms.kafka',
        'schema',
    ],
    package_data={
        'schema': ['*.avsc', '*.json'],
        'pipeline.xlang': ['pom.xml', '*.sh'],
        'pipeline.flink': ['*.sh'],
    },
    install_requires=PINNED,
)
