using System.Text;

namespace Osprey.Sources.Rtsp;

/// <summary>
/// An RTSP client session for the first video stream Osprey can decode (RTP/JPEG or H.264): OPTIONS, DESCRIBE (SDP),
/// SETUP with <c>RTP/AVP/TCP;unicast;interleaved=0-1</c>, PLAY; then RTP packets as they come, an OPTIONS keep-alive
/// every half session timeout, and TEARDOWN on <see cref="Stop"/>.
/// </summary>
internal sealed class RtspSession : IDisposable
{
    /// <summary>The RTP encodings Osprey decodes.</summary>
    public static readonly string[] Encodings = { "JPEG", "H264" };

    private readonly RtspConnection connection;
    private readonly string playUrl;
    private readonly int channel;
    private readonly TimeSpan keepAlive;
    private DateTime lastRequest = DateTime.UtcNow;
    private int? lastSequence;
    private bool stopped;

    public RtspSession(string url)
    {
        connection = new RtspConnection(new Uri(url));
        try
        {
            string requestUrl = connection.RequestUrl;
            connection.Request("OPTIONS", requestUrl);
            var describe = connection.Request("DESCRIBE", requestUrl, ("Accept", "application/sdp"));
            string baseUrl = describe.Header("Content-Base") ?? describe.Header("Content-Location") ?? requestUrl;
            var media = Sdp.Parse(Encoding.UTF8.GetString(describe.Body));
            Media = media.FirstOrDefault(m => m.Kind == "video" && Encodings.Contains(m.Encoding))
                ?? throw new InvalidDataException($"{connection.Shown}: the stream offers " +
                    (media.Count == 0 ? "no media" : string.Join(", ", media.Select(m => $"{m.Kind} {(m.Encoding.Length > 0 ? m.Encoding : $"payload type {m.PayloadType}")}"))) +
                    "; Osprey reads RTSP video as JPEG (RFC 2435) or H.264 (RFC 6184).");
            var setup = connection.Request("SETUP", Sdp.ControlUrl(baseUrl, Media.Control), ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"));
            string session = setup.Header("Session") ?? throw new InvalidDataException($"{connection.Shown}: SETUP answered without a Session.");
            string[] sessionParts = session.Split(';', StringSplitOptions.TrimEntries);
            connection.Session = sessionParts[0];
            int timeout = sessionParts.Skip(1).Where(p => p.StartsWith("timeout=", StringComparison.OrdinalIgnoreCase))
                .Select(p => int.TryParse(p["timeout=".Length..], out int t) ? t : 60).FirstOrDefault(60);
            keepAlive = TimeSpan.FromSeconds(Math.Max(timeout, 2) / 2.0);
            var transport = setup.Header("Transport") ?? "";
            var interleaved = System.Text.RegularExpressions.Regex.Match(transport, @"interleaved=(\d+)");
            if (transport.Length > 0 && !transport.Contains("TCP", StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"{connection.Shown}: the server will not send RTP over the RTSP connection (Transport: {transport}); Osprey reads RTSP over TCP only.");
            channel = interleaved.Success ? int.Parse(interleaved.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
            playUrl = baseUrl;
            connection.Request("PLAY", playUrl, ("Range", "npt=0.000-"));
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>The video stream being played.</summary>
    public SdpMedia Media { get; }

    /// <summary>The URL without user:password.</summary>
    public string Shown => connection.Shown;

    /// <summary>How the stream ended ("" while it runs).</summary>
    public string Ending { get; private set; } = "";

    /// <summary>
    /// The next RTP packet of the video; null at the end. <paramref name="gap"/> is true when sequence numbers were
    /// skipped since the packet before (a depacketizer then drops the frame it was gathering).
    /// </summary>
    public RtpPacket? Next(out bool gap)
    {
        gap = false;
        while (true)
        {
            if (DateTime.UtcNow - lastRequest > keepAlive)
            {
                lastRequest = DateTime.UtcNow;
                try
                {
                    connection.Send("OPTIONS", playUrl); // its answer is skipped by the frame reader
                }
                catch (IOException)
                {
                    // the read below tells how the connection ended
                }
            }
            var frame = connection.NextFrame(out string ending);
            if (frame is null)
            {
                Ending = stopped ? "stopped" : ending;
                return null;
            }
            if (frame.Value.Channel != channel || RtpPacket.Parse(frame.Value.Payload) is not { } packet || packet.PayloadType != Media.PayloadType)
                continue;
            gap = lastSequence is { } last && (ushort)(last + 1) != packet.Sequence;
            lastSequence = packet.Sequence;
            return packet;
        }
    }

    /// <summary>Sends TEARDOWN (not waiting for its answer) and closes the connection: a <see cref="Next"/> blocked elsewhere returns null.</summary>
    public void Stop()
    {
        if (stopped) return;
        stopped = true;
        try
        {
            connection.Send("TEARDOWN", playUrl);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
            // gone already
        }
        connection.Close();
    }

    public void Dispose()
    {
        Stop();
        connection.Dispose();
    }
}
