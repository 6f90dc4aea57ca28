using OpenCvSharp;

namespace Osprey.Sources.Rtsp;

/// <summary>An RTSP stream of RTP/JPEG (RFC 2435): each frame's JPEG rebuilt and decoded with OpenCV's <c>imdecode</c>.</summary>
internal sealed class RtspJpegFrames(RtspSession session) : IFrameSource
{
    private readonly JpegDepacketizer depacketizer = new();
    private int undecodable;

    public string Description
    {
        get
        {
            int dropped = depacketizer.Dropped + undecodable;
            return $"RTSP JPEG, {(session.Ending.Length > 0 ? session.Ending : "playing")}" +
                (dropped > 0 ? $", {dropped} incomplete or undecodable frame{(dropped > 1 ? "s" : "")} skipped" : "");
        }
    }

    public bool IsLive => true;

    /// <summary>Gathers <paramref name="stride"/> frames and decodes the last (vid_stride).</summary>
    public bool Next(int stride, Mat frame)
    {
        int frames = 0;
        while (session.Next(out bool gap) is { } packet)
        {
            if (gap) depacketizer.Lost();
            if (depacketizer.Push(packet) is not { } jpeg || ++frames < stride) continue;
            using var decoded = Cv2.ImDecode(jpeg, ImreadModes.Color);
            if (decoded.Empty())
            {
                undecodable++;
                frames--;
                continue;
            }
            decoded.CopyTo(frame);
            return true;
        }
        return false;
    }

    public void Stop() => session.Stop();

    public void Dispose() => session.Dispose();
}
