"""quorum: small online River models per feature stage, voted into explained trading signals.

The research API::

    from quorum import run_backtest
    result = run_backtest(["data/binance/spot/btcusdt_20240808.gz"], out_dir="out")
    result.report["ensemble"]["log_loss"], result.signals[:3]
"""

from quorum.backtest import BacktestResult, run_backtest

__all__ = ["BacktestResult", "run_backtest"]
