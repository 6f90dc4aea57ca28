namespace Osprey.Sources.Rtsp;

/// <summary>An RTP packet (RFC 3550): marker bit, payload type, sequence number, timestamp and payload.</summary>
internal readonly record struct RtpPacket(bool Marker, int PayloadType, ushort Sequence, uint Timestamp, ArraySegment<byte> Payload)
{
    /// <summary>Parses the fixed header, CSRCs, header extension and padding; null when it is no RTP version 2 packet.</summary>
    public static RtpPacket? Parse(byte[] data)
    {
        if (data.Length < 12 || data[0] >> 6 != 2) return null;
        int start = 12 + 4 * (data[0] & 0x0F);
        if ((data[0] & 0x10) != 0)
        {
            if (data.Length < start + 4) return null;
            start += 4 + 4 * ((data[start + 2] << 8) | data[start + 3]);
        }
        int end = data.Length - ((data[0] & 0x20) != 0 ? data[^1] : 0);
        if (end < start) return null;
        return new RtpPacket((data[1] & 0x80) != 0, data[1] & 0x7F, (ushort)((data[2] << 8) | data[3]),
            (uint)((data[4] << 24) | (data[5] << 16) | (data[6] << 8) | data[7]), new ArraySegment<byte>(data, start, end - start));
    }
}
