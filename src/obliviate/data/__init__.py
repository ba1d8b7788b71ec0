from obliviate.data.benchmark import QA_SPLITS, Benchmark, DataConfig, build_benchmark, format_answer, format_prompt

__all__ = ["QA_SPLITS", "Benchmark", "DataConfig", "build_benchmark", "format_answer", "format_prompt"]
