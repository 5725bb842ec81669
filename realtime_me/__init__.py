"""realtime-me: real-time micro-expression spotting and recognition.

    from realtime_me.pipeline import Pipeline, PipelineConfig
    from realtime_me.sources import VideoSource
    result = Pipeline(PipelineConfig()).run(VideoSource("clip.mp4", realtime=False))
"""
__version__ = "0.1.0"
