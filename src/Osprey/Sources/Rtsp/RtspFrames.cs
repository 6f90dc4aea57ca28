namespace Osprey.Sources.Rtsp;

/// <summary>Opens an rtsp:// URL as frames, by the encoding of its video stream.</summary>
internal static class RtspFrames
{
    public static IFrameSource Open(string url)
    {
        var session = new RtspSession(url);
        try
        {
            return session.Media.Encoding switch
            {
                "JPEG" => new RtspJpegFrames(session),
                _ => new RtspH264Frames(session),
            };
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }
}
