namespace Osprey.Sources.Rtsp;

/// <summary>One <c>m=</c> section of an SDP description (RFC 4566) as RTSP's DESCRIBE returns it.</summary>
/// <param name="Kind">video, audio, …</param>
/// <param name="PayloadType">The first RTP payload type of the m= line.</param>
/// <param name="Encoding">From <c>a=rtpmap</c> (upper case: JPEG, H264, …); for static type 26 without one, JPEG.</param>
/// <param name="Format">The <c>a=fmtp</c> parameters (names compared case-insensitively).</param>
/// <param name="Control">The <c>a=control</c> value ("" when none).</param>
internal sealed record SdpMedia(string Kind, int PayloadType, string Encoding, IReadOnlyDictionary<string, string> Format, string Control);

/// <summary>Parses the media sections of an SDP description.</summary>
internal static class Sdp
{
    /// <summary>The media sections, in order; session-level lines are ignored.</summary>
    public static IReadOnlyList<SdpMedia> Parse(string text)
    {
        var media = new List<SdpMedia>();
        string? kind = null;
        int payloadType = -1;
        string encoding = "", control = "";
        var format = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        void Flush()
        {
            if (kind is null) return;
            if (encoding.Length == 0 && payloadType == 26) encoding = "JPEG"; // RFC 3551's static payload type
            media.Add(new SdpMedia(kind, payloadType, encoding, format, control));
        }
        foreach (string raw in text.Split('\n'))
        {
            string line = raw.TrimEnd('\r').Trim();
            if (line.StartsWith("m=", StringComparison.Ordinal))
            {
                Flush();
                string[] fields = line[2..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                kind = fields.Length > 0 ? fields[0] : "";
                payloadType = fields.Length > 3 && int.TryParse(fields[3], out int pt) ? pt : -1;
                encoding = control = "";
                format = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            }
            else if (kind is not null && line.StartsWith("a=rtpmap:", StringComparison.Ordinal))
            {
                string[] fields = line["a=rtpmap:".Length..].Split(' ', 2);
                if (fields.Length == 2 && int.TryParse(fields[0], out int pt) && pt == payloadType)
                    encoding = fields[1].Split('/')[0].Trim().ToUpperInvariant();
            }
            else if (kind is not null && line.StartsWith("a=fmtp:", StringComparison.Ordinal))
            {
                string[] fields = line["a=fmtp:".Length..].Split(' ', 2);
                if (fields.Length == 2)
                    foreach (string pair in fields[1].Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    {
                        int equals = pair.IndexOf('=');
                        if (equals > 0) format[pair[..equals].Trim()] = pair[(equals + 1)..].Trim();
                    }
            }
            else if (kind is not null && line.StartsWith("a=control:", StringComparison.Ordinal))
                control = line["a=control:".Length..].Trim();
        }
        Flush();
        return media;
    }

    /// <summary>The URL a media's SETUP goes to: its control URL, absolute or relative to the base (RFC 2326 C.1.1).</summary>
    public static string ControlUrl(string baseUrl, string control)
    {
        if (control.Length == 0 || control == "*") return baseUrl;
        if (control.StartsWith("rtsp://", StringComparison.OrdinalIgnoreCase) || control.StartsWith("rtsps://", StringComparison.OrdinalIgnoreCase))
            return control;
        return baseUrl.EndsWith('/') ? baseUrl + control : baseUrl + "/" + control;
    }
}
