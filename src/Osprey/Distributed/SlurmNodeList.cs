namespace Osprey.Distributed;

/// <summary>Slurm's compressed host lists (<c>gpu[01-04,07],login1</c>).</summary>
public static class SlurmNodeList
{
    /// <summary>The first host of a Slurm node list: <c>gpu[007-010,12],x</c> → <c>gpu007</c>.</summary>
    /// <exception cref="DistributedException">The list is empty or its brackets do not match.</exception>
    public static string FirstHost(string nodeList)
    {
        string text = nodeList.Trim();
        int bracket = text.IndexOf('[', StringComparison.Ordinal);
        int comma = text.IndexOf(',', StringComparison.Ordinal);
        if (bracket < 0 || (comma >= 0 && comma < bracket))
        {
            string host = comma >= 0 ? text[..comma] : text;
            if (host.Length == 0) throw new DistributedException($"Slurm node list '{nodeList}' has no host");
            return host;
        }
        int close = text.IndexOf(']', bracket);
        if (close < 0) throw new DistributedException($"Slurm node list '{nodeList}' has an unclosed '['");
        string prefix = text[..bracket];
        string firstRange = text[(bracket + 1)..close].Split(',')[0];
        string firstNumber = firstRange.Split('-')[0];
        // The suffix after ']' runs to the next top-level comma.
        string rest = text[(close + 1)..];
        int restComma = rest.IndexOf(',', StringComparison.Ordinal);
        string suffix = restComma >= 0 ? rest[..restComma] : rest;
        if (firstNumber.Length == 0) throw new DistributedException($"Slurm node list '{nodeList}' has an empty range");
        return prefix + firstNumber + suffix;
    }
}
